"""`tern check ADDRESS` (SPEC §1, issue 5): the seed's whole procedure
automated, against real servers on loopback — a `tern serve`, a private
Postfix, and scripted peers that misbehave — with a dnsmasq serving the MX
records. Every assertion is on the real output: the step lines ("-> " sent,
"<- " received), the meaning of each reply's class and enhanced code, the
seed's lists of possible reasons for a failure, the verdict, the exit code
(0 only when the test message was queued, or RCPT accepted with --no-data),
the --json document and the --log transcript.

The world is built once per module (tern, Postfix, peers and DNS take a
moment to start); each test runs `tern check` as a subprocess.
"""
import base64
import json
import os
import re
import subprocess
import time

import pytest

from dns_server import DnsServer, free_port
from peers import GARBAGE, HANG, Rule, ScriptedPeer, free_address
from postfix_peer import PostfixDestination
from ternlib import TERN, TernServer, base_config, make_certificate, password_hash

PASSWORD = "correct horse battery"
HELO = "client.example.test"

# The seed's list of possible reasons for a failure at OPEN.
SEED_OPEN_REASONS = [
    "the destination SMTP service is not available",
    "restrictions on the destination firewall",
    "restrictions on the source firewall",
    "an incorrect FQDN or IP address for the destination SMTP server",
    "an incorrect port number",
]
CLASS_2 = "2yz success: the command completed on the remote server, which is ready for the next command"
CLASS_5 = "5yz permanent failure: the command was not accepted for a reason that will not go away"


class World:
    pass


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """tern on 127.0.0.1 (listeners "default": STARTTLS, AUTH optional;
    "submission": STARTTLS, AUTH required), a Postfix, scripted peers on
    127.0.0.x:25, and a dnsmasq with MX records pointing at them all."""
    w = World()
    w.folder = tmp_path_factory.mktemp("check")
    w.cert, w.key = make_certificate(w.folder / "tls", name="mx1.example.test")
    tls = f'tls = "starttls"\ncertificate = "{w.cert}"\nprivate_key = "{w.key}"\n'
    extra = (f'[[mailbox]]\naddress = "chris@example.test"\nmaildir = "mail/chris"\n'
             f'password = "{password_hash(PASSWORD)}"\n'
             '[[mailbox]]\naddress = "kate@fabrikam.test"\nmaildir = "mail/kate-fabrikam"\n')
    config = base_config([("default", tls + 'auth = "optional"\n'),
                          ("submission", tls + 'auth = "required"\n')], extra)
    config = config.replace('accepted = ["example.test"]', 'accepted = ["example.test", "fabrikam.test"]')
    w.tern = TernServer(w.folder / "tern", config)
    w.started = []
    try:
        w.tern.start()
        w.port = w.tern.ports["default"]
        w.submission = w.tern.ports["submission"]
        taken = []

        def address(port=25):
            a = free_address(port, first=100, avoid=taken)
            taken.append(a)
            return a

        # Hosts where nothing listens on tern's port: connections are refused.
        w.dead1, w.dead2, w.dead3 = address(w.port), address(w.port), address(w.port)
        w.hang = address()
        w.garbage = address()
        w.tricky = address()
        w.postfix_host = address()
        for peer in (ScriptedPeer(w.hang, hang="CONNECT"),
                     ScriptedPeer(w.garbage, greeting=GARBAGE),
                     ScriptedPeer(w.tricky, starttls=(w.cert, w.key), rules=[
                         # Says yes to STARTTLS, then never starts TLS.
                         Rule("STARTTLS", b"220 2.0.0 Ready to start TLS\r\n"),
                         Rule("MAIL", b"<html><body>400 Bad Request</body></html>\r\n", address="web@sender.test"),
                         Rule("MAIL", "421 4.3.2 Service shutting down", address="bye@sender.test"),
                         Rule("RCPT", HANG, address="slow@tricky.test"),
                         Rule("RCPT", "451 4.7.1 Greylisted, please try again later", address="grey@tricky.test"),
                     ])):
            w.started.append(peer.start())
        w.postfix = PostfixDestination(w.postfix_host, mailboxes=["kate@postfix.test"])
        w.started.append(w.postfix.start())
        w.dns = DnsServer(
            mx=[("example.test", "mx1.example.test", 10),
                ("fabrikam.test", "mx2.fabrikam.test", 20),  # listed out of order on purpose
                ("fabrikam.test", "mx1.fabrikam.test", 10),
                ("nowhere.test", "mx1.nowhere.test", 10),
                ("nowhere.test", "mx2.nowhere.test", 20),
                ("hang.test", "mx.hang.test", 10),
                ("garbage.test", "mx.garbage.test", 10),
                ("tricky.test", "mx.tricky.test", 10),
                ("postfix.test", "mx.postfix.test", 10),
                ("nullmx.test", ".", 0),
                ("badmx.test", "missing.badmx.test", 10)],
            hosts=[("mx1.example.test", "127.0.0.1"),
                   ("mx1.fabrikam.test", w.dead1),
                   ("mx2.fabrikam.test", "127.0.0.1"),
                   ("mx1.nowhere.test", w.dead2),
                   ("mx2.nowhere.test", w.dead3),
                   ("mx.hang.test", w.hang),
                   ("mx.garbage.test", w.garbage),
                   ("mx.tricky.test", w.tricky),
                   ("mx.postfix.test", w.postfix_host),
                   ("implicit.test", "127.0.0.1")])
        w.started.append(w.dns.start())
        yield w
    finally:
        for thing in reversed(w.started):
            thing.stop()
        if w.tern.proc and w.tern.proc.poll() is None:
            w.tern.kill()


def check(world, *args, env=None, helo=True, timeout=60):
    """Runs `tern check` with the world's DNS; returns the CompletedProcess
    with .lines (stdout lines) and .elapsed (seconds)."""
    argv = [TERN, "check", *args, "--dns-server", world.dns.address]
    if helo and "--helo" not in args and "-c" not in args:
        argv += ["--helo", HELO]
    full_env = dict(os.environ)
    full_env.pop("TERN_PASSWORD", None)
    full_env.update(env or {})
    started = time.monotonic()
    # The world's folder has no etc/tern.toml: defaults come only from the arguments.
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=world.folder,
                            env=full_env, stdin=subprocess.DEVNULL)
    result.elapsed = time.monotonic() - started
    result.lines = result.stdout.splitlines()
    assert "Traceback" not in result.stderr and "terminate called" not in result.stderr, result.stderr
    return result


def in_order(lines, *expected):
    """Each expected text is in a line (a regex when it is a re.Pattern), in this order."""
    at = 0
    for e in expected:
        for i in range(at, len(lines)):
            if (e.search(lines[i]) if isinstance(e, re.Pattern) else e in lines[i]):
                at = i + 1
                break
        else:
            raise AssertionError(f"{e!r} not found after line {at}:\n" + "\n".join(lines))


def verdict(result):
    assert result.lines, result.stderr
    last = result.lines[-1]
    assert last.startswith("== Verdict: "), result.stdout
    return last


def queued_ids(world):
    return {q["id"] for q in world.tern.queue_json()}


# --- passing checks --------------------------------------------------------


def test_passing_check_through_the_mx_record(world):
    before = queued_ids(world)
    r = check(world, "kate@example.test", "--from", "chris@contoso.test", "--port", str(world.port))
    assert r.returncode == 0, r.stdout
    assert r.stderr == ""
    in_order(r.lines,
             "== MX lookup for example.test",
             "   example.test MX preference = 10, mail exchanger = mx1.example.test [127.0.0.1]",
             f"== OPEN mx1.example.test [127.0.0.1]:{world.port}",
             "   connected in ",
             re.compile(r"^<- 220 mail\.example\.test tern ESMTP MAIL Service ready at \w{3}, "),
             "     " + CLASS_2,
             f"-> EHLO {HELO}",
             "<- 250-mail.example.test Hello [127.0.0.1]",
             "<- 250-STARTTLS",
             "<- 250 SMTPUTF8",
             "     250 Requested mail action okay, completed",  # the basic code, as it has no enhanced one
             "-> MAIL FROM:<chris@contoso.test>",
             "<- 250 2.1.0 Sender OK",
             "     " + CLASS_2,
             "     2.1.0 Addressing status: OK",
             "-> RCPT TO:<kate@example.test> NOTIFY=success,failure",
             "<- 250 2.1.5 Recipient OK",
             "     2.1.5 Destination address valid",
             "-> DATA",
             "<- 354 Start mail input; end with <CRLF>.<CRLF>",
             "     3yz accepted, but the remote server needs more information",
             "-> Subject: Test from tern check",
             "-> ",
             "-> This is a test message sent by tern check",
             "-> .",
             re.compile(r"^<- 250 2\.6\.0 <[^>]+> \[InternalId=\d+, Hostname=mail\.example\.test\] "
                        r"Queued mail for delivery$"),
             "-> QUIT",
             "<- 221 2.0.0 Service closing transmission channel")
    assert verdict(r).startswith(f"== Verdict: PASS — the test message was queued by mx1.example.test "
                                 f"[127.0.0.1]:{world.port}: 250 2.6.0 <")
    assert "Possible reasons" not in r.stdout and "FAILED" not in r.stdout
    internal_id = int(re.search(r"InternalId=(\d+)", r.stdout).group(1))
    assert queued_ids(world) - before == {internal_id}
    [q] = [q for q in world.tern.queue_json() if q["id"] == internal_id]
    assert q["sender"] == "chris@contoso.test"
    assert q["recipients"][0]["address"] == "kate@example.test"
    assert q["recipients"][0]["notify"] == "SUCCESS,FAILURE"
    show = world.tern.queue("show", str(internal_id)).stdout
    assert "Subject: Test from tern check" in show


def test_defaults_come_from_the_configuration(world):
    """-c FILE: EHLO with its hostname, the sender postmaster@ it."""
    r = check(world, "kate@example.test", "--server", f"127.0.0.1:{world.port}", "--no-data",
              "-c", str(world.tern.config))
    assert r.returncode == 0, r.stdout
    in_order(r.lines, "-> EHLO mail.example.test", "-> MAIL FROM:<postmaster@mail.example.test>")


def test_mx_failover_first_host_down_second_answers(world):
    r = check(world, "kate@fabrikam.test", "--port", str(world.port))
    assert r.returncode == 0, r.stdout
    in_order(r.lines,
             "== MX lookup for fabrikam.test",
             f"   fabrikam.test MX preference = 10, mail exchanger = mx1.fabrikam.test [{world.dead1}]",
             "   fabrikam.test MX preference = 20, mail exchanger = mx2.fabrikam.test [127.0.0.1]",
             f"== OPEN mx1.fabrikam.test [{world.dead1}]:{world.port}",
             f"   FAILED: Could not open connection to the host, on port {world.port}: Connection refused",
             "   This means: the host answered, but nothing accepts connections on that port",
             f"   Trying the next host: mx2.fabrikam.test [127.0.0.1]:{world.port}",
             f"== OPEN mx2.fabrikam.test [127.0.0.1]:{world.port}",
             "<- 220 mail.example.test",
             "<- 250 2.1.5 Recipient OK",
             re.compile(r"^<- 250 2\.6\.0 .* Queued mail for delivery$"))
    assert verdict(r).startswith(f"== Verdict: PASS — the test message was queued by mx2.fabrikam.test "
                                 f"[127.0.0.1]:{world.port}")
    # A host that is skipped for the next one is not a failure to explain at length.
    assert "Possible reasons" not in r.stdout

    j = json.loads(check(world, "kate@fabrikam.test", "--port", str(world.port), "--json", "--no-data").stdout)
    assert [(a["host"], a["ok"]) for a in j["attempts"]] == [("mx1.fabrikam.test", False), ("mx2.fabrikam.test", True)]
    assert "Connection refused" in j["attempts"][0]["error"]
    assert [m["host"] for m in j["mx"]] == ["mx1.fabrikam.test", "mx2.fabrikam.test"]
    assert j["host"] == "mx2.fabrikam.test" and j["verdict"]["ok"] is True


def test_every_mx_host_down(world):
    r = check(world, "kate@nowhere.test", "--port", str(world.port))
    assert r.returncode == 1
    in_order(r.lines,
             f"== OPEN mx1.nowhere.test [{world.dead2}]:{world.port}",
             "   FAILED: Could not open connection to the host",
             "   Trying the next host: mx2.nowhere.test",
             f"== OPEN mx2.nowhere.test [{world.dead3}]:{world.port}",
             "   FAILED: Could not open connection to the host",
             "   Possible reasons for the failure at OPEN:",
             *("     - " + reason for reason in SEED_OPEN_REASONS[:1]),
             "   Try next: check the MX records (tern mx DOMAIN)")
    for reason in SEED_OPEN_REASONS:
        assert reason in r.stdout
    assert verdict(r) == (
        f"== Verdict: FAIL — none of the 2 mail servers for nowhere.test took the session: "
        f"mx1.nowhere.test [{world.dead2}]:{world.port} could not be reached: Connection refused; "
        f"mx2.nowhere.test [{world.dead3}]:{world.port} could not be reached: Connection refused")


def test_implicit_mx_when_the_domain_has_only_an_address(world):
    r = check(world, "kate@implicit.test", "--port", str(world.port), "--no-data")
    in_order(r.lines, "== MX lookup for implicit.test",
             "   implicit.test has no MX records: mail goes to the domain's own address (implicit MX)",
             "   implicit.test internet address = 127.0.0.1",
             f"== OPEN implicit.test [127.0.0.1]:{world.port}",
             "<- 550 5.7.54 Unable to relay recipient in non-accepted domain",
             "     5.7.54 Relay not permitted for this recipient domain (Exchange)",
             "   This means: the server does not accept mail for this domain from this client (relay denied)")
    assert r.returncode == 1


def test_no_data_stops_after_rcpt(world):
    before = queued_ids(world)
    r = check(world, "kate@example.test", "--server", f"127.0.0.1:{world.port}", "--no-data")
    assert r.returncode == 0, r.stdout
    in_order(r.lines, "-> RCPT TO:<kate@example.test> NOTIFY=success,failure", "<- 250 2.1.5 Recipient OK",
             "-> QUIT", "<- 221 2.0.0")
    assert "-> DATA" not in r.lines
    assert verdict(r) == (f"== Verdict: PASS — 127.0.0.1:{world.port} accepts mail for kate@example.test "
                          "(stopped before DATA: --no-data; no message was sent)")
    assert queued_ids(world) == before


# --- failures the seed lists ----------------------------------------------


def test_refused_connection_is_explained(world):
    port = free_port()
    r = check(world, "kate@example.test", "--server", f"127.0.0.1:{port}")
    assert r.returncode == 1
    assert r.stderr == ""
    in_order(r.lines,
             f"== OPEN 127.0.0.1:{port}",
             f"   FAILED: Could not open connection to the host, on port {port}: Connection refused",
             "   This means: the host answered, but nothing accepts connections on that port",
             "   Possible reasons for the failure at OPEN:",
             "     - the destination SMTP service is not available",
             "     - an incorrect port number",
             "   Try next: ")
    for reason in SEED_OPEN_REASONS:
        assert any(line.startswith("     - " + reason) for line in r.lines), reason
    assert verdict(r) == f"== Verdict: FAIL — 127.0.0.1:{port} could not be reached: Connection refused"


def test_unknown_user_550_5_1_1(world):
    r = check(world, "nobody@example.test", "--server", f"127.0.0.1:{world.port}")
    assert r.returncode == 1
    in_order(r.lines,
             "-> RCPT TO:<nobody@example.test> NOTIFY=success,failure",
             "<- 550 5.1.1 User unknown",
             "     " + CLASS_5,
             "     5.1.1 Bad destination mailbox address",
             "   This means: the server does not know this recipient",
             "   Possible reasons for the failure at RCPT TO:",
             "     - the specified recipient does not exist in the organization",
             "     - a typing error in the recipient's address",
             "   Try next: check the recipient address",
             "-> QUIT",
             "<- 221 2.0.0 Service closing transmission channel")
    assert "-> DATA" not in r.lines
    assert verdict(r) == f"== Verdict: FAIL — 127.0.0.1:{world.port} refused RCPT TO: 550 5.1.1 User unknown"


def test_530_5_7_1_on_a_listener_that_requires_auth(world):
    r = check(world, "kate@example.test", "--server", f"127.0.0.1:{world.submission}")
    assert r.returncode == 1
    in_order(r.lines,
             "-> MAIL FROM:<postmaster@client.example.test>",
             "<- 530 5.7.1 Client was not authenticated",
             "     5.7.1 Delivery not authorized, message refused",
             "   This means: the server does not accept mail from anonymous clients on this port",
             "   Possible reasons for the failure at MAIL FROM:",
             "     - the destination server does not accept anonymous message submissions",
             "   Try next: authenticate first (tern check --auth USER",
             "-> QUIT")
    assert verdict(r) == (f"== Verdict: FAIL — 127.0.0.1:{world.submission} refused MAIL FROM: "
                          "530 5.7.1 Client was not authenticated")


def test_501_5_5_4_bad_ehlo_domain(world):
    r = check(world, "kate@example.test", "--server", f"127.0.0.1:{world.port}", "--helo", "bad_domain!")
    assert r.returncode == 1
    in_order(r.lines,
             "-> EHLO bad_domain!",
             "<- 501 5.5.4 Invalid domain name",
             "     5.5.4 Invalid command arguments",
             "   This means: the server does not accept the name given with EHLO",
             "   Possible reasons for the failure at EHLO:",
             "     - invalid characters in the domain name given to EHLO",
             "     - connection restrictions on the destination SMTP server",
             "   Try next: give your server's fully qualified domain name with EHLO",
             "-> QUIT")
    assert "-> HELO" not in r.lines  # 501 is about the name: HELO would not help
    assert "-> MAIL FROM" not in r.stdout
    assert verdict(r) == f"== Verdict: FAIL — 127.0.0.1:{world.port} refused EHLO: 501 5.5.4 Invalid domain name"


def test_bad_sender_550_5_1_7(world):
    r = check(world, "kate@example.test", "--server", f"127.0.0.1:{world.port}", "--from", "chris@@contoso")
    assert r.returncode == 1
    in_order(r.lines, "-> MAIL FROM:<chris@@contoso>", "<- 550 5.1.7 Invalid address",
             "     5.1.7 Bad sender's mailbox address syntax",
             "     - a syntax error in the sender's e-mail address")


# --- STARTTLS and AUTH ---------------------------------------------------


def test_starttls_shows_the_certificate_and_that_it_verifies(world):
    # Trust the test certificate (OpenSSL's SSL_CERT_FILE): it names mx1.example.test.
    r = check(world, "kate@example.test", "--port", str(world.port), "--starttls", "--no-data",
              env={"SSL_CERT_FILE": str(world.cert)})
    assert r.returncode == 0, r.stdout
    in_order(r.lines,
             "<- 250-STARTTLS",
             "-> STARTTLS",
             "<- 220 2.0.0 SMTP server ready",
             re.compile(r"^   TLS: TLSv1\.[23] with cipher \S+"),
             "   certificate subject: CN = mx1.example.test",
             "   certificate issuer:  CN = mx1.example.test",
             re.compile(r"^   valid from \w{3} +\d+ \d\d:\d\d:\d\d \d{4} GMT to \w{3} +\d+ \d\d:\d\d:\d\d \d{4} GMT$"),
             "   verification: ok (a trusted chain, and it names mx1.example.test)",
             f"-> EHLO {HELO}",
             "<- 250-AUTH PLAIN LOGIN",
             "-> MAIL FROM:")
    after_tls = r.stdout.split("-> STARTTLS", 1)[1]
    assert "250-STARTTLS" not in after_tls  # not offered again once TLS is on

    # Not trusted: shown, explained, and the check goes on (MX hosts seldom verify).
    r = check(world, "kate@example.test", "--server", f"127.0.0.1:{world.port}", "--starttls", "--json")
    assert r.returncode == 0, r.stdout
    j = json.loads(r.stdout)
    assert j["tls"]["subject"] == "CN = mx1.example.test"
    assert j["tls"]["issuer"] == "CN = mx1.example.test"
    assert j["tls"]["verified"] is False
    assert j["tls"]["verify_result"] == "self-signed certificate"
    assert re.match(r"\w{3} +\d+ .* GMT", j["tls"]["not_after"])
    assert j["tls"]["protocol"].startswith("TLSv1.")
    assert j["verdict"]["ok"] is True


def test_starttls_refused_by_a_server_without_it(world):
    r = check(world, "kate@postfix.test", "--starttls")
    assert r.returncode == 1
    in_order(r.lines,
             "   the server does not offer STARTTLS in its EHLO reply; trying anyway",
             "-> STARTTLS",
             re.compile(r"^<- 5\d\d "),
             "   Possible reasons for the failure at STARTTLS:",
             "     - the server does not offer STARTTLS")


def test_auth_with_the_password_from_the_environment(world, tmp_path):
    log = tmp_path / "check.log"
    # A self-signed certificate: only --insecure-auth lets the password go.
    r = check(world, "kate@example.test", "--server", f"127.0.0.1:{world.submission}", "--starttls",
              "--auth", "chris@example.test", "--insecure-auth", "--from", "chris@example.test",
              "--log", str(log), env={"TERN_PASSWORD": PASSWORD})
    assert r.returncode == 0, r.stdout
    in_order(r.lines,
             "-> STARTTLS",
             "   verification: FAILED: self-signed certificate",
             "-> AUTH PLAIN **** (user chris@example.test)",
             "<- 235 2.7.0 Authentication successful",
             "     2.7.0 Security or policy status: OK",
             "-> MAIL FROM:<chris@example.test>",
             "<- 250 2.1.0 Sender OK",
             re.compile(r"^<- 250 2\.6\.0 "))
    assert verdict(r).startswith("== Verdict: PASS")
    secret = base64.b64encode(f"\0chris@example.test\0{PASSWORD}".encode()).decode()
    text = log.read_text()
    for output in (r.stdout, text):
        assert PASSWORD not in output and secret not in output
    assert "-> AUTH PLAIN **** (user chris@example.test)" in text


def test_auth_failures_are_explained(world):
    server = f"127.0.0.1:{world.submission}"
    r = check(world, "kate@example.test", "--server", server, "--starttls", "--auth", "chris@example.test",
              "--insecure-auth", env={"TERN_PASSWORD": "wrong password"})
    assert r.returncode == 1
    in_order(r.lines, "<- 535 5.7.3 Authentication unsuccessful",
             "     5.7.3 Security conversion required but not possible (Exchange: authentication unsuccessful)",
             "   This means: the server rejected the user name or password",
             "     - a wrong user name or password", "-> QUIT")
    assert "-> MAIL FROM" not in r.stdout

    # Without STARTTLS this listener offers no AUTH (--insecure-auth: no TLS asked for).
    r = check(world, "kate@example.test", "--server", server, "--auth", "chris@example.test", "--insecure-auth",
              env={"TERN_PASSWORD": PASSWORD})
    assert r.returncode == 1
    in_order(r.lines, "   the server does not offer AUTH in its EHLO reply (many offer it only after STARTTLS)",
             "-> AUTH PLAIN ****", re.compile(r"^<- 5\d\d "), "   Try next: issue STARTTLS first")

    # No password at all, and no terminal to ask for it: a usage error before connecting.
    r = check(world, "kate@example.test", "--server", server, "--auth", "chris@example.test")
    assert r.returncode == 2
    assert verdict(r) == ("== Verdict: FAIL — --auth chris@example.test needs a password: set TERN_PASSWORD "
                          "(standard input is not a terminal to ask for it)")
    assert "== OPEN" not in r.stdout


def test_auth_password_not_sent_over_tls_that_failed_verification(world, tmp_path):
    log = tmp_path / "check.log"
    r = check(world, "kate@example.test", "--server", f"127.0.0.1:{world.submission}", "--starttls",
              "--auth", "chris@example.test", "--log", str(log), env={"TERN_PASSWORD": PASSWORD})
    assert r.returncode == 1, r.stdout
    in_order(r.lines,
             "-> STARTTLS",
             "   verification: FAILED: self-signed certificate",
             f"-> EHLO {HELO}",
             "   the password was not sent: the TLS certificate failed verification (self-signed certificate), "
             "so the server may not be who it claims to be",
             "-> QUIT")
    assert verdict(r) == (f"== Verdict: FAIL — not sending the password of chris@example.test to "
                          f"127.0.0.1:{world.submission}: the TLS certificate failed verification "
                          "(self-signed certificate), so the server may not be who it claims to be "
                          "(--insecure-auth sends it anyway)")
    for output in (r.stdout, log.read_text()):
        assert "-> AUTH" not in output and "-> MAIL" not in output


def test_auth_turns_on_starttls_and_never_sends_in_clear_text(world):
    r = check(world, "kate@example.test", "--server", f"127.0.0.1:{world.submission}",
              "--auth", "chris@example.test", "--json", env={"TERN_PASSWORD": PASSWORD})
    assert r.returncode == 1, r.stdout
    j = json.loads(r.stdout)
    assert j["tls"]["verified"] is False
    assert j["auth"] == {"sent": False, "reason": "the TLS certificate failed verification (self-signed "
                                                  "certificate), so the server may not be who it claims to be"}
    sent = [s.get("sent", "") for s in j["steps"]]
    assert "STARTTLS" in sent and not any(x.startswith("AUTH") for x in sent), sent

    # A server without STARTTLS gets no password at all.
    r = check(world, "kate@postfix.test", "--auth", "chris@example.test", env={"TERN_PASSWORD": PASSWORD})
    assert r.returncode == 1
    in_order(r.lines, "   --auth: STARTTLS first, so that the password is never sent in clear text",
             "-> STARTTLS", re.compile(r"^<- 5\d\d "))
    assert "-> AUTH" not in r.stdout


def test_auth_over_a_verified_certificate(world):
    # Trusted (SSL_CERT_FILE) and naming the MX host: the password goes, no flag needed.
    r = check(world, "kate@example.test", "--port", str(world.submission), "--auth", "chris@example.test",
              "--from", "chris@example.test", env={"TERN_PASSWORD": PASSWORD, "SSL_CERT_FILE": str(world.cert)})
    assert r.returncode == 0, r.stdout
    in_order(r.lines,
             "-> STARTTLS",
             "   verification: ok (a trusted chain, and it names mx1.example.test)",
             "-> AUTH PLAIN **** (user chris@example.test)",
             "<- 235 2.7.0 Authentication successful")


def test_help_names_insecure_auth(world):
    out = subprocess.run([TERN, "check", "--help"], capture_output=True, text=True, timeout=30)
    assert "--insecure-auth" in out.stdout
    assert "certificate failed verification" in out.stdout


# --- --json and --log ----------------------------------------------------------


def test_json_report_of_a_passing_check(world):
    r = check(world, "kate@example.test", "--server", f"127.0.0.1:{world.port}", "--json")
    assert r.returncode == 0
    j = json.loads(r.stdout)  # one document, nothing else on stdout
    assert j["address"] == "kate@example.test"
    assert j["host"] == "127.0.0.1" and j["port"] == world.port
    assert [s["step"] for s in j["steps"]] == ["banner", "EHLO", "MAIL FROM", "RCPT TO", "DATA",
                                               "end of message", "QUIT"]
    assert [s.get("sent") for s in j["steps"]] == [
        None, f"EHLO {HELO}", f"MAIL FROM:<postmaster@{HELO}>",
        "RCPT TO:<kate@example.test> NOTIFY=success,failure", "DATA", ".", "QUIT"]
    codes = [s["reply"]["code"] for s in j["steps"]]
    assert codes == [220, 250, 250, 250, 354, 250, 221]
    assert all(s["ok"] for s in j["steps"])
    mail = j["steps"][2]
    assert mail["reply"] == {"code": 250, "enhanced": "2.1.0", "lines": ["Sender OK"]}
    assert mail["class"].startswith("success")
    assert mail["meaning"] == "Addressing status: OK"
    assert isinstance(mail["elapsed_ms"], int)
    assert "Subject: Test from tern check" in j["steps"][5]["message"]
    assert "PIPELINING" in j["extensions"]
    assert j["verdict"]["ok"] is True
    assert "Queued mail for delivery" in j["verdict"]["text"]


def test_json_report_of_a_failure(world):
    r = check(world, "nobody@example.test", "--server", f"127.0.0.1:{world.port}", "--json")
    assert r.returncode == 1
    j = json.loads(r.stdout)
    rcpt = [s for s in j["steps"] if s.get("step") == "RCPT TO"][0]
    assert rcpt["ok"] is False
    assert rcpt["reply"]["code"] == 550 and rcpt["reply"]["enhanced"] == "5.1.1"
    assert rcpt["class"].startswith("permanent failure")
    assert rcpt["meaning"] == "Bad destination mailbox address"
    assert "the specified recipient does not exist in the organization" in rcpt["reasons"]
    v = j["verdict"]
    assert v["ok"] is False
    assert v["step"] == "RCPT TO"
    assert v["reply"] == "550 5.1.1 User unknown"
    assert v["explanation"] == "the server does not know this recipient"
    assert v["reasons"] == rcpt["reasons"] and v["next"]

    r = check(world, "kate@example.test", "--server", f"127.0.0.1:{free_port()}", "--json")
    j = json.loads(r.stdout)
    assert r.returncode == 1
    assert j["verdict"]["step"] == "OPEN"
    assert "Connection refused" in j["verdict"]["reply"]
    assert all(any(reason in x for x in j["verdict"]["reasons"]) for reason in SEED_OPEN_REASONS)


def test_log_file_keeps_the_transcript(world, tmp_path):
    log = tmp_path / "telnet.txt"
    first = check(world, "kate@example.test", "--server", f"127.0.0.1:{world.port}", "--log", str(log))
    second = check(world, "nobody@example.test", "--server", f"127.0.0.1:{world.port}", "--log", str(log),
                   "--json")
    assert first.returncode == 0 and second.returncode == 1
    text = log.read_text()
    runs = text.split("# tern check ")
    assert len(runs) == 3 and runs[0] == ""  # appended, one header per run
    assert runs[1].startswith("kate@example.test at ")
    assert runs[2].startswith("nobody@example.test at ")
    # The first run's log is exactly what was printed, after the header.
    assert runs[1].split("\n", 1)[1].strip("\n") == first.stdout.strip("\n")
    # --json prints JSON, and the log still gets the readable transcript.
    assert "<- 550 5.1.1 User unknown" in runs[2] and "== Verdict: FAIL" in runs[2]
    json.loads(second.stdout)

    r = check(world, "kate@example.test", "--server", f"127.0.0.1:{world.port}",
              "--log", str(tmp_path / "no" / "such" / "folder" / "log.txt"))
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.startswith("tern: cannot write the log file ") and len(r.stderr.splitlines()) == 1


# --- a real Postfix --------------------------------------------------------------


def test_postfix_passing_check(world):
    r = check(world, "kate@postfix.test")
    assert r.returncode == 0, r.stdout
    in_order(r.lines,
             f"   postfix.test MX preference = 10, mail exchanger = mx.postfix.test [{world.postfix_host}]",
             f"== OPEN mx.postfix.test [{world.postfix_host}]:25",
             "<- 220 postfix-destination.peer.test ESMTP Postfix",
             "<- 250-DSN",
             "-> RCPT TO:<kate@postfix.test> NOTIFY=success,failure",
             "<- 250 2.1.5 Ok",
             "<- 354 End data with <CR><LF>.<CR><LF>",
             re.compile(r"^<- 250 2\.0\.0 Ok: queued as \w+$"),
             "<- 221 2.0.0 Bye")
    assert verdict(r).startswith(f"== Verdict: PASS — the test message was queued by mx.postfix.test "
                                 f"[{world.postfix_host}]:25: 250 2.0.0 Ok: queued as ")
    [message] = world.postfix.wait_for_messages("kate@postfix.test", 1, timeout=30)
    assert message["Subject"] == "Test from tern check"


def test_postfix_unknown_user(world):
    r = check(world, "nobody@postfix.test", "--json")
    assert r.returncode == 1
    j = json.loads(r.stdout)
    assert j["verdict"]["step"] == "RCPT TO"
    assert j["verdict"]["reply"].startswith("550 5.1.1 <nobody@postfix.test>: Recipient address rejected")
    r = check(world, "nobody@postfix.test")
    in_order(r.lines,
             re.compile(r"^<- 550 5\.1\.1 <nobody@postfix\.test>: Recipient address rejected: User unknown"),
             "     5.1.1 Bad destination mailbox address",
             "     - the specified recipient does not exist in the organization")


# --- bad input: a clear message, never a hang, never a stack trace -----------------


@pytest.mark.parametrize("address", ["kate", "kate@", "@example.test", ""])
def test_address_without_a_domain(world, address):
    r = check(world, address)
    assert r.returncode == 2
    assert r.lines == [f'== Verdict: FAIL — "{address}" is not an e-mail address: it needs a user and a domain '
                       "(user@domain, e.g. kate@fabrikam.com); the domain tells which server to ask"]


def test_domain_that_does_not_exist(world):
    r = check(world, "kate@nothing.test")
    assert r.returncode == 1
    in_order(r.lines,
             "== MX lookup for nothing.test",
             "   FAILED: 550 5.1.2 Domain nothing.test does not exist (NXDOMAIN)",
             "   This means: the domain of the address does not exist in DNS (NXDOMAIN): it has no MX and no A record",
             "   Possible reasons for the failure at MX lookup:",
             "     - a typing error in the domain part of the address",
             "   Try next: ")
    assert verdict(r) == ("== Verdict: FAIL — no mail server for nothing.test: "
                          "550 5.1.2 Domain nothing.test does not exist (NXDOMAIN)")
    assert "== OPEN" not in r.stdout


def test_domain_whose_mx_has_no_address_and_null_mx(world):
    r = check(world, "kate@badmx.test")
    assert r.returncode == 1
    in_order(r.lines, "   badmx.test MX preference = 10, mail exchanger = missing.badmx.test",
             re.compile(r"^   FAILED: 550 5\.4\.4 "),
             "   This means: the domain exists, but neither its MX hosts nor")
    r = check(world, "kate@nullmx.test")
    assert r.returncode == 1
    in_order(r.lines, "   nullmx.test MX preference = 0, mail exchanger = .",
             re.compile(r"^   FAILED: 556 5\.1\.10 "),
             "   This means: the domain publishes a null MX (RFC 7505)")


def test_dns_server_that_never_answers_is_bounded(world):
    from dns_server import blackhole
    with blackhole() as address:
        started = time.monotonic()
        r = subprocess.run([TERN, "check", "kate@example.test", "--dns-server", address, "--timeout", "1"],
                           capture_output=True, text=True, timeout=30, cwd=world.folder)
        elapsed = time.monotonic() - started
    assert r.returncode == 1
    assert elapsed < 5, elapsed
    assert re.search(r"^   FAILED: 451 4\.4\.3 ", r.stdout, re.M), r.stdout
    assert "   This means: DNS could not answer now" in r.stdout


def test_server_that_never_sends_a_banner(world):
    r = check(world, "kate@hang.test", "--timeout", "1")
    assert r.returncode == 1
    assert r.elapsed < 10
    in_order(r.lines,
             f"== OPEN mx.hang.test [{world.hang}]:25",
             "   connected in ",
             "   FAILED: no banner: timed out after 1 s",
             "   This means: the connection was accepted, but the server sent no banner (220 ...) in time",
             "   Possible reasons for the failure at banner:",
             "   Try next: ")
    assert verdict(r) == f"== Verdict: FAIL — mx.hang.test [{world.hang}]:25 sent no banner within 1 s"


def test_server_that_does_not_speak_smtp(world):
    r = check(world, "kate@garbage.test")
    assert r.returncode == 1
    in_order(r.lines,
             "   FAILED: no banner: not SMTP: ",
             "   This means: the program on that port answered, but not with an SMTP banner",
             "     - another service listens on that port, not an SMTP server")
    assert verdict(r).startswith(f"== Verdict: FAIL — mx.garbage.test [{world.garbage}]:25 does not speak SMTP")
    json.loads(check(world, "kate@garbage.test", "--json").stdout)  # binary junk still makes valid JSON


def test_reply_that_is_not_smtp_in_the_middle(world):
    r = check(world, "kate@tricky.test", "--from", "web@sender.test")
    assert r.returncode == 1
    in_order(r.lines, "-> MAIL FROM:<web@sender.test>",
             "   FAILED: no reply: not SMTP: ",
             "   This means: the server answered MAIL FROM with something that is not an SMTP reply")
    assert verdict(r).startswith(f"== Verdict: FAIL — no reply to MAIL FROM from mx.tricky.test [{world.tricky}]:25: "
                                 "not SMTP: ")


def test_server_that_stops_answering_in_the_middle(world):
    r = check(world, "slow@tricky.test", "--timeout", "1")
    assert r.returncode == 1
    assert r.elapsed < 10
    in_order(r.lines, "-> RCPT TO:<slow@tricky.test> NOTIFY=success,failure",
             "   FAILED: no reply: timed out after 1 s",
             "   This means: the server stopped answering")
    assert verdict(r) == (f"== Verdict: FAIL — no reply to RCPT TO from mx.tricky.test [{world.tricky}]:25: "
                          "timed out after 1 s")


def test_421_closes_the_session_and_json_stays_one_document(world):
    r = check(world, "kate@tricky.test", "--from", "bye@sender.test", "--json")
    assert r.returncode == 1
    j = json.loads(r.stdout)  # exactly one document, even though the server hung up
    assert j["verdict"]["reply"] == "421 4.3.2 Service shutting down"
    assert j["verdict"]["explanation"] == "the server is closing the connection: it cannot go on now"
    assert [s.get("sent") for s in j["steps"]][-1] == "MAIL FROM:<bye@sender.test>"  # no QUIT after a 421


def test_greylisting_is_a_temporary_failure(world):
    r = check(world, "grey@tricky.test")
    assert r.returncode == 1
    in_order(r.lines, "<- 451 4.7.1 Greylisted, please try again later",
             "     4yz temporary failure",
             "   This means: the server defers this recipient",
             "     - greylisting")
    assert verdict(r) == (f"== Verdict: FAIL — mx.tricky.test [{world.tricky}]:25 deferred RCPT TO: "
                          "451 4.7.1 Greylisted, please try again later (temporary: try again later)")


def test_bad_options_are_usage_errors(world):
    r = check(world, "kate@example.test", "--dns-server", "nonsense", "--json")
    assert r.returncode == 2
    assert json.loads(r.stdout)["verdict"]["text"] == 'DNS server "nonsense" is not an IP address with optional port'
    r = check(world, "kate@example.test", "--server", "127.0.0.1:notaport")
    assert r.returncode == 2
    assert verdict(r) == '== Verdict: FAIL — --server "127.0.0.1:notaport" is not HOST[:PORT]'
    r = check(world, "kate@example.test", "--server", "no-such-host.invalid")
    assert r.returncode == 1
    assert verdict(r).startswith("== Verdict: FAIL — cannot resolve the server name no-such-host.invalid: ")


def test_tls_handshake_that_fails(world):
    """The peer says 220 to STARTTLS but never starts TLS: our ClientHello is
    read as a command line (a 500 reply: "wrong version number") or, when it
    holds no line feed, waited on forever (our timeout). Either way: bounded,
    explained."""
    r = check(world, "kate@tricky.test", "--starttls", "--timeout", "1")
    assert r.returncode == 1
    assert r.elapsed < 10
    in_order(r.lines, "-> STARTTLS", "<- 220 2.0.0 Ready to start TLS",
             "   FAILED: TLS negotiation failed: ",
             "   This means: the server agreed to STARTTLS, but the TLS handshake did not complete",
             "   Possible reasons for the failure at STARTTLS:",
             "     - the server's certificate, protocols or ciphers do not match ours")
    assert verdict(r).startswith(f"== Verdict: FAIL — TLS negotiation with mx.tricky.test [{world.tricky}]:25 failed: ")


def test_address_literal_skips_the_mx_lookup(world):
    r = check(world, "kate@[127.0.0.1]", "--port", str(world.port), "--no-data")
    assert r.returncode == 1, r.stdout  # tern takes no mail for address literals: relay denied
    in_order(r.lines, "   the domain is an address literal: no MX lookup", f"== OPEN 127.0.0.1:{world.port}",
             "-> RCPT TO:<kate@[127.0.0.1]> NOTIFY=success,failure",
             "<- 550 5.7.54 Unable to relay recipient in non-accepted domain")
    assert "MX lookup for" not in r.stdout
