"""Nothing tern prints passes a message's, a peer's or a client's control
bytes to a terminal (issue 8, item 1): escape sequences, BEL, bare CR, bidi
overrides and invalid UTF-8 show as \\xNN in `tern queue list/show`,
`tern talk`, `tern check` and the logs; valid UTF-8 stays readable; every
--json document parses and gives the original bytes back; a CSV log line is
one event."""
import csv
import io
import json
import re
import subprocess

from delivery_env import tracking, wait_until
from peers import Rule, ScriptedPeer
from ternlib import TERN, Client

RAW = (b"\x1b", b"\x07", b"\r", b"\x9b", b"\xe2\x80\xae")  # ESC, BEL, CR, C1 CSI, RLO
HOSTILE_ID = b"<\x1b[2J\x1b]0;title\x07\xff@x>"
SHOWN_ID = "<\\x1b[2J\\x1b]0;title\\x07\\xff@x>"
MESSAGE = (b"Message-ID: " + HOSTILE_ID + b"\r\n"
           b"Subject: \x1b[31mred\x1b[0m \xc3\xa9t\xc3\xa9 \xe2\x80\xaereversed\r\n"
           b"\r\n"
           b"body \x1b[2J and a bare\rCR \xff\r\n")


def unescape(text):
    """tern's \\xNN back to bytes (the inverse of util::printable)."""
    return re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]), text.encode("utf-8"))


def assert_clean(output, what):
    for raw in RAW:
        assert raw not in output, f"{what} passes {raw!r} through:\n{output!r}"
    output.decode("utf-8")  # valid UTF-8: what is not is shown as \xNN


def tern_bytes(*args, **kwargs):
    out = subprocess.run([TERN, *args], capture_output=True, timeout=60, **kwargs)
    assert out.returncode == 0, out.stderr
    return out.stdout


def queue_bytes(server, *args):
    return tern_bytes("queue", *args, "--config", str(server.config))


def send_hostile_message(port):
    """Queues MESSAGE; the envelope carries hostile bytes where tern accepts
    them (ENVID is xtext: any byte). Returns the InternalId."""
    with Client(port) as c:
        assert c.reply().startswith("220 ")
        assert c.cmd("EHLO contoso.com").startswith("250")
        reply = c.cmd("MAIL FROM:<chris@contoso.com> ENVID=+1B[2J+07+FF")
        if not reply.startswith("250 "):  # an ENVID that is not printable may be refused
            assert reply.startswith("5"), reply
            assert c.cmd("MAIL FROM:<chris@contoso.com>") == "250 2.1.0 Sender OK"
        assert c.cmd("RCPT TO:<kate@example.test>") == "250 2.1.5 Recipient OK"
        assert c.cmd("DATA").startswith("354 ")
        c.send(MESSAGE + b".\r\n")
        queued = c.reply()
        m = re.search(r"\[InternalId=(\d+),", queued)
        assert queued.startswith("250 2.6.0 ") and m, queued
        return m.group(1)


def test_hostile_bytes_in_a_message_never_reach_the_terminal(server):
    internal_id = send_hostile_message(server.port)
    assert server.stop() == 0  # the logs are flushed; tern queue reads the spool either way

    listing = queue_bytes(server, "list")
    assert_clean(listing, "queue list")
    assert internal_id.encode() in listing

    show = queue_bytes(server, "show", internal_id)
    assert_clean(show, "queue show")
    text = show.decode()
    assert f"Message-ID:   {SHOWN_ID}" in text
    assert f"Message-ID: {SHOWN_ID}" in text  # the header as stored
    assert "Subject: \\x1b[31mred\\x1b[0m été \\xe2\\x80\\xaereversed" in text  # UTF-8 kept, RLO not
    if "ENVID:" in text:
        assert "ENVID:        \\x1b[2J\\x07\\xff" in text

    content = queue_bytes(server, "show", internal_id, "--content")
    assert_clean(content, "queue show --content")
    assert "body \\x1b[2J and a bare" in content.decode()  # (the bare CR: \x0d, or a line end)

    # --json: valid, ASCII, and the bytes come back exactly.
    for args in (("list", "--json"), ("show", internal_id, "--json", "--content")):
        out = queue_bytes(server, *args)
        assert_clean(out, " ".join(args))
        out.decode("ascii")
        doc = json.loads(out)
        q = doc[0] if isinstance(doc, list) else doc
        assert unescape(q["message_id"]) == HOSTILE_ID
        if "envid" in q:
            assert unescape(q["envid"]) == b"\x1b[2J\x07\xff"
    shown = json.loads(queue_bytes(server, "show", internal_id, "--json", "--content"))
    assert b"Subject: \x1b[31mred\x1b[0m \xc3\xa9t\xc3\xa9 \xe2\x80\xaereversed\r\n" in unescape(shown["content"])

    # The logs: one CSV row per event, no raw control byte, the id escaped.
    for prefix, fields in (("smtp-receive", 8), ("message-tracking", 9)):
        raw = b"".join(p.read_bytes() for p in sorted((server.folder / "log").glob(prefix + "*.log")))
        assert_clean(raw, prefix + " log")
        rows = [r for r in csv.reader(io.StringIO(raw.decode())) if r and not r[0].startswith("#")]
        assert rows and all(len(r) == fields for r in rows), rows
    [received] = [r for r in tracking(server) if r[1] == "RECEIVE"]
    assert received[3] == SHOWN_ID
    # The 250 that echoed the id (escaped by the session already, or by the log).
    [echo] = [r[7] for r in csv.reader(io.StringIO(server.log_text("smtp-receive")))
              if len(r) == 8 and r[6] == ">" and r[7].startswith("250 2.6.0 ")]
    assert "x1b[2J" in echo and "x1b]0;title" in echo, echo


GREETING = "220 mx.peer.test \x1b]0;pwned\x07\x1b[2J ready \u202e"
REFUSAL = "550 5.1.1 \x1b[31mno such user\x1b[0m\x9b"


def test_peer_replies_are_escaped_by_talk_and_check(tmp_path):
    with ScriptedPeer("127.0.0.1", port=0, greeting=GREETING,
                      rules=[Rule("RCPT", REFUSAL)]) as peer:
        target = f"127.0.0.1:{peer.port}"
        talk = tern_bytes("talk", target, "--log", str(tmp_path / "talk.log"),
                          input=b"EHLO client.test\nMAIL FROM:<a@client.test>\nRCPT TO:<x@peer.test>\nQUIT\n")
        for output, what in ((talk, "tern talk"), ((tmp_path / "talk.log").read_bytes(), "talk --log")):
            assert_clean(output, what)
            assert "220 mx.peer.test \\x1b]0;pwned\\x07\\x1b[2J ready \\xe2\\x80\\xae" in output.decode()
            assert "550 5.1.1 \\x1b[31mno such user\\x1b[0m\\xc2\\x9b" in output.decode()

        run = subprocess.run([TERN, "check", "x@peer.test", "--server", target, "--helo", "client.test",
                              "--no-data", "--no-sender-records"], capture_output=True, timeout=60, cwd=tmp_path,
                             stdin=subprocess.DEVNULL)
        assert run.returncode == 1, run.stdout
        assert_clean(run.stdout + run.stderr, "tern check")
        assert "<- 550 5.1.1 \\x1b[31mno such user\\x1b[0m\\xc2\\x9b" in run.stdout.decode()

        run = subprocess.run([TERN, "check", "x@peer.test", "--server", target, "--helo", "client.test",
                              "--no-data", "--json", "--no-sender-records"], capture_output=True, timeout=60,
                             cwd=tmp_path,
                             stdin=subprocess.DEVNULL)
        assert_clean(run.stdout, "tern check --json")
        doc = json.loads(run.stdout)
        replies = [s["reply"] for s in doc["steps"] if "reply" in s]
        assert replies[0]["lines"] == [GREETING[4:]]  # JSON escapes controls itself
        assert doc["verdict"]["ok"] is False


def test_a_peer_reply_kept_as_last_reply_is_escaped(mta):
    a = mta.address()
    mta.peer(a, rules=[Rule("RCPT", "451 4.3.0 \x1b]0;pwned\x07\x1b[2J later\r")])
    mta.dns(mx=[("fabrikam.test", "mx.fabrikam.test", 10)], hosts=[("mx.fabrikam.test", a)])
    tern = mta.tern(retry='["1h"]')
    [q] = mta.send(tern, "chris@example.test", ["kate@fabrikam.test"])
    wait_until(lambda: tern.queue_json()[0]["recipients"][0].get("last_reply"), what="the deferral")
    assert tern.stop() == 0
    listing = queue_bytes(tern, "list")
    show = queue_bytes(tern, "show", str(q["id"]))
    for output, what in ((listing, "queue list"), (show, "queue show")):
        assert_clean(output, what)
        assert "\\x1b]0;pwned\\x07\\x1b[2J later" in output.decode()
    [defer] = [r for r in tracking(tern) if r[1] == "DEFER"]
    assert "\\x1b]0;pwned\\x07\\x1b[2J later" in defer[8]
    raw = b"".join(p.read_bytes() for p in (tern.folder / "log").glob("message-tracking*.log"))
    assert_clean(raw, "tracking log")
