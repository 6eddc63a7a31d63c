"""`tern talk HOST[:PORT]` (SPEC §1, issue 5): the seed's Telnet session, made
better. Interactive use is driven for real in tmux (keys sent with send-keys,
the screen read with capture-pane): backspace corrects a typo, Tab completes a
verb, the arrow keys recall a command, every reply is followed by its meaning,
STARTTLS upgrades the live session, DATA takes lines until ".", --log keeps
the transcript. Scripted use (commands on a pipe) echoes each command and
exits 0. Failures (refused, no banner, not SMTP) are explained, never hang.

tmux gives no event when the screen changes: the screen is polled with a
deadline (short naps between captures).
"""
import os
import re
import subprocess
import time
import uuid

import pytest

from dns_server import free_port
from peers import GARBAGE, ScriptedPeer
from ternlib import TERN, make_certificate

CLASS_2 = "    2yz success: the command completed on the remote server, which is ready for the next command"


@pytest.fixture
def tls_server(make_server, tmp_path):
    cert, key = make_certificate(tmp_path / "tls")
    return make_server(listeners=[("default", f'tls = "starttls"\nauth = "optional"\n'
                                              f'certificate = "{cert}"\nprivate_key = "{key}"\n')])


class Pane:
    """A command running in a detached tmux session on a private tmux server."""

    def __init__(self, command, width=200, height=50):
        self.socket = f"tern-talk-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # When the command ends, say how and keep the pane (cat waits on the terminal).
        shell = f'{command}; echo "[tern exited with $?]"; exec cat'
        subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", "new-session", "-d", "-s", "talk",
                        "-x", str(width), "-y", str(height), shell], check=True, timeout=10)
        self.socket_path = self.tmux("display-message", "-p", "#{socket_path}").stdout.strip()

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)

    def keys(self, *keys):
        out = self.tmux("send-keys", "-t", "talk", *keys)
        assert out.returncode == 0, out.stderr

    def screen(self):
        """Everything shown so far (scroll-back included), wrapped lines joined."""
        out = self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "talk")
        return "\n".join(line.rstrip() for line in out.stdout.splitlines()).rstrip("\n")

    def wait(self, predicate, timeout=10, what=None):
        """Polls the screen until predicate(screen) (or `text in screen`) holds."""
        test = (lambda s: predicate in s) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if test(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never showed {what or predicate!r}:\n{screen}")
            time.sleep(0.02)  # tmux has no "screen changed" event

    def lines(self):
        return self.screen().splitlines()

    def close(self):
        self.tmux("kill-server")
        if self.socket_path:  # tmux leaves its socket file behind
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass


@pytest.fixture
def pane():
    panes = []

    def start(command):
        p = Pane(command)
        panes.append(p)
        return p

    yield start
    for p in panes:
        p.close()


def in_order(lines, *expected):
    at = 0
    for e in expected:
        for i in range(at, len(lines)):
            if (e.search(lines[i]) if isinstance(e, re.Pattern) else e == lines[i]):
                at = i + 1
                break
        else:
            raise AssertionError(f"{e!r} not found after line {at}:\n" + "\n".join(lines))


def test_interactive_session_in_tmux(tls_server, pane, tmp_path):
    log = tmp_path / "talk.log"
    p = pane(f"{TERN} talk 127.0.0.1:{tls_server.port} --log {log}")
    p.wait(lambda s: s.endswith("smtp>"), what="the prompt after the banner")
    in_order(p.lines(),
             f"Connecting to 127.0.0.1:{tls_server.port}...",
             f"Connected to 127.0.0.1:{tls_server.port}. Type SMTP commands; QUIT ends the session. "
             "Tab completes a verb, the arrow keys recall earlier commands.",
             re.compile(r"^220 mail\.example\.test tern ESMTP MAIL Service ready at "),
             CLASS_2)
    assert "    220 Service ready" not in p.screen()  # the banner says so already

    # A typo corrected with backspace: the server gets the corrected command.
    p.keys("EHLO contoso.comm", "BSpace", "Enter")
    p.wait("250 SMTPUTF8")
    screen = p.screen()
    assert "contoso.comm" not in screen
    in_order(p.lines(), "smtp> EHLO contoso.com", "250-mail.example.test Hello [127.0.0.1]",
             "250-STARTTLS", "250 SMTPUTF8", CLASS_2)

    # Tab completes the verb (no space is added after "MAIL FROM:<").
    p.keys("MA", "Tab")
    p.wait(lambda s: s.endswith("smtp> MAIL FROM:<"), what="the completed verb")
    p.keys("chris@contoso.com>", "Enter")
    p.wait("250 2.1.0 Sender OK")
    p.keys("rc", "Tab", "nobody@example.test>", "Enter")
    p.wait("Try next:")
    p.keys("RCPT TO:<kate@example.test> NOTIFY=success,failure", "Enter")
    p.wait("250 2.1.5 Recipient OK")
    in_order(p.lines(),
             "smtp> MAIL FROM:<chris@contoso.com>",
             "250 2.1.0 Sender OK",
             CLASS_2,
             "    2.1.0 Addressing status: OK",
             "smtp> RCPT TO:<nobody@example.test>",
             "550 5.1.1 User unknown",
             re.compile(r"^    5yz permanent failure: the command was not accepted"),
             "    5.1.1 Bad destination mailbox address",
             "    This means: the server does not know this recipient",
             "    Possible reasons:",
             "      - the specified recipient does not exist in the organization",
             re.compile(r"^    Try next: check the recipient address"),
             "smtp> RCPT TO:<kate@example.test> NOTIFY=success,failure",
             "250 2.1.5 Recipient OK",
             CLASS_2,
             "    2.1.5 Destination address valid")

    # DATA: the lines typed are the message until a line with a single dot.
    p.keys("DATA", "Enter")
    p.wait("354 Start mail input; end with <CRLF>.<CRLF>")
    for line in ("Subject: Test from Contoso", "", "This is a test message", ".leading dot", "."):
        p.keys(line, "Enter") if line else p.keys("Enter")
    p.wait("Queued mail for delivery")
    in_order(p.lines(), "smtp> DATA", "354 Start mail input; end with <CRLF>.<CRLF>",
             "    3yz accepted, but the remote server needs more information before it can complete the "
             "operation: the client sends it next",
             "Subject: Test from Contoso", "", "This is a test message", ".leading dot", ".",
             re.compile(r"^250 2\.6\.0 <[^>]+> \[InternalId=\d+, Hostname=mail\.example\.test\] Queued mail for delivery$"),
             CLASS_2, "    2.6.0 Message content or media status: OK")
    internal_id = re.search(r"InternalId=(\d+)", p.screen()).group(1)
    show = tls_server.queue("show", internal_id, "--content").stdout
    assert "Subject: Test from Contoso" in show
    assert "\n.leading dot" in show and "..leading dot" not in show  # dot-stuffed on the wire, once

    # History: the up arrow recalls the last command.
    p.keys("NOOP", "Enter")
    p.wait(lambda s: s.count("250 2.0.0 OK") == 1, what="one NOOP reply")
    p.keys("Up", "Enter")
    p.wait(lambda s: s.count("250 2.0.0 OK") == 2, what="two NOOP replies")
    assert p.screen().count("smtp> NOOP") == 2

    # STARTTLS upgrades the live session; EHLO again shows the extensions under TLS.
    p.keys("STARTTLS", "Enter")
    p.wait("say EHLO again.")
    p.keys("EHLO contoso.com", "Enter")
    p.wait(lambda s: s.count("250 SMTPUTF8") == 2, what="the second EHLO reply")
    after = p.screen().split("smtp> STARTTLS", 1)[1]
    in_order(after.splitlines(),
             "220 2.0.0 SMTP server ready",
             re.compile(r"^TLS negotiated: TLSv1\.[23] with cipher \S+\.$"),
             re.compile(r"^Certificate: CN = mail\.example\.test, issued by CN = mail\.example\.test, valid until "
                        r".* \(not trusted: self-signed certificate\)"),
             "The session starts over (RFC 3207): say EHLO again.",
             "smtp> EHLO contoso.com",
             "250-mail.example.test Hello [127.0.0.1]",
             "250 SMTPUTF8")
    assert "250-STARTTLS" not in after

    p.keys("QUIT", "Enter")
    p.wait("[tern exited with 0]")
    in_order(p.lines(), "smtp> QUIT", "221 2.0.0 Service closing transmission channel", CLASS_2,
             "[tern exited with 0]")

    text = log.read_text().splitlines()
    in_order(text,
             f"-- Connecting to 127.0.0.1:{tls_server.port}...",
             re.compile(r"^S: 220 mail\.example\.test tern ESMTP"),
             "C: EHLO contoso.com",
             "S: 250-mail.example.test Hello [127.0.0.1]",
             "S: 250 SMTPUTF8",
             "C: MAIL FROM:<chris@contoso.com>",
             "S: 250 2.1.0 Sender OK",
             "C: RCPT TO:<nobody@example.test>",
             "S: 550 5.1.1 User unknown",
             "C: DATA",
             "S: 354 Start mail input; end with <CRLF>.<CRLF>",
             "C: Subject: Test from Contoso",
             "C: ",
             "C: This is a test message",
             "C: .leading dot",
             "C: .",
             re.compile(r"^S: 250 2\.6\.0 .* Queued mail for delivery$"),
             "C: STARTTLS",
             "S: 220 2.0.0 SMTP server ready",
             re.compile(r"^-- TLS negotiated: TLSv1"),
             "C: EHLO contoso.com",
             "S: 250 SMTPUTF8",
             "C: QUIT",
             "S: 221 2.0.0 Service closing transmission channel")
    assert not any("contoso.comm" in line for line in text)


def talk(*args, script="", timeout=30):
    started = time.monotonic()
    r = subprocess.run([TERN, "talk", *args], input=script, capture_output=True, text=True, timeout=timeout)
    r.elapsed = time.monotonic() - started
    r.lines = r.stdout.splitlines()
    assert "Traceback" not in r.stderr and "terminate called" not in r.stderr, r.stderr
    return r


def test_scripted_session_echoes_commands_and_explains_replies(server, tmp_path):
    log = tmp_path / "talk.log"
    r = talk(f"127.0.0.1:{server.port}", "--log", str(log),
             script="EHLO x.test\nMAIL FROM:<chris@contoso.com>\nRCPT TO:<kate@example.test>\nDATA\n"
                    "Subject: scripted\n\n..two dots\n.\nFOO\nAUTH PLAIN AHVzZXIAc2VjcmV0\nQUIT\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr == ""
    in_order(r.lines,
             re.compile(r"^220 mail\.example\.test tern ESMTP"),
             CLASS_2,
             "smtp> EHLO x.test",
             "250-mail.example.test Hello [127.0.0.1]",
             "250 SMTPUTF8",
             CLASS_2,
             "    250 Requested mail action okay, completed",
             "smtp> MAIL FROM:<chris@contoso.com>",
             "250 2.1.0 Sender OK",
             "    2.1.0 Addressing status: OK",
             "smtp> RCPT TO:<kate@example.test>",
             "250 2.1.5 Recipient OK",
             "smtp> DATA",
             "354 Start mail input; end with <CRLF>.<CRLF>",
             "Subject: scripted",
             "",
             "..two dots",
             ".",
             re.compile(r"^250 2\.6\.0 .* Queued mail for delivery$"),
             "smtp> FOO",
             "500 5.3.3 Unrecognized command",
             "    5.3.3 System not capable of selected features (Exchange: unrecognized command)",
             "smtp> AUTH PLAIN AHVzZXIAc2VjcmV0",
             "smtp> QUIT",
             "221 2.0.0 Service closing transmission channel",
             CLASS_2,
             "    2.0.0 OK (nothing more to report)")
    [q] = server.queue_json()
    assert "\n..two dots" in server.queue("show", str(q["id"]), "--content").stdout  # sent as "...two dots"
    text = log.read_text()
    assert "C: AUTH PLAIN ****" in text and "AHVzZXIAc2VjcmV0" not in text  # credentials are masked


def test_scripted_end_of_input_sends_quit(server):
    r = talk(f"127.0.0.1:{server.port}", script="NOOP\n")
    assert r.returncode == 0
    in_order(r.lines, "smtp> NOOP", "250 2.0.0 OK", "smtp> QUIT", "221 2.0.0 Service closing transmission channel")


def test_refused_connection(tmp_path):
    port = free_port()
    r = talk(f"127.0.0.1:{port}", script="QUIT\n")
    assert r.returncode == 1
    in_order(r.lines,
             f"Connecting to 127.0.0.1:{port}...",
             f"Could not open connection to the host, on port {port}: Connection refused",
             "    This means: the host answered, but nothing accepts connections on that port (or a firewall rejects them)",
             "    Possible reasons:",
             "      - the destination SMTP service is not available",
             "      - an incorrect port number")


def test_bad_target(tmp_path):
    r = talk("127.0.0.1:notaport")
    assert r.returncode == 2
    assert r.stderr.strip() == 'tern: "127.0.0.1:notaport" is not HOST[:PORT]'


def test_server_that_never_sends_a_banner():
    with ScriptedPeer("127.0.0.1", port=0, hang="CONNECT") as peer:
        r = talk(f"127.0.0.1:{peer.port}", "--timeout", "1", script="EHLO x.test\n")
    assert r.returncode == 1
    assert r.elapsed < 10
    in_order(r.lines, "No reply: timed out after 1 s",
             "    This means: the connection was accepted, but the server sent no banner (220 ...) in time",
             "    Possible reasons:")


def test_server_that_does_not_speak_smtp():
    with ScriptedPeer("127.0.0.1", port=0, greeting=GARBAGE) as peer:
        r = talk(f"127.0.0.1:{peer.port}", script="EHLO x.test\n")
    assert r.returncode == 1
    in_order(r.lines, re.compile(r"^No reply: not SMTP: "),
             "    This means: the program on that port answered, but not with an SMTP banner (220 ...)")


def test_server_that_closes_the_connection(server):
    with ScriptedPeer("127.0.0.1", port=0, drop="MAIL") as peer:
        r = talk(f"127.0.0.1:{peer.port}", script="EHLO x.test\nMAIL FROM:<a@b.test>\nRCPT TO:<c@d.test>\n")
    assert r.returncode == 1
    in_order(r.lines, "smtp> MAIL FROM:<a@b.test>", "The connection was closed by the server.")
    assert "smtp> RCPT" not in r.stdout


def test_end_of_input_inside_data(server):
    r = talk(f"127.0.0.1:{server.port}",
             script="EHLO x.test\nMAIL FROM:<a@b.test>\nRCPT TO:<kate@example.test>\nDATA\nSubject: cut\n")
    assert r.returncode == 1
    assert r.lines[-1] == '(end of input inside DATA: the message was not ended with ".")'
    assert server.queue_json() == []


def test_log_file_that_cannot_be_written(server, tmp_path):
    r = talk(f"127.0.0.1:{server.port}", "--log", str(tmp_path / "missing" / "talk.log"), script="QUIT\n")
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.startswith("tern: cannot write the log file ") and len(r.stderr.splitlines()) == 1
