"""The hostile peer suite (issue 8): a next hop that answers with bytes that
are not UTF-8 (in the greeting, the EHLO reply, the RCPT reply, the final
reply), with a 100 KB reply line, with continuation lines that do not end,
never answers, or accepts and then resets the connection. After each, against
a real tern relaying through dnsmasq to a scripted peer on a loopback address:

- the message is deferred with a reason a person can read (a 4xx code, an
  enhanced code, no control characters),
- `tern queue list --json` still prints JSON (valid UTF-8) and `tern queue
  show` still works,
- the server still serves: a new SMTP session gets its 250s, and local mail
  is still delivered.

The reply reader's memory bound for long lines and endless continuations is
checked byte by byte in tests/unit/reply_parser_test.cpp.
"""
import json
import re
import smtplib
import subprocess

import pytest

from delivery_env import wait_for_maildir, wait_until
from peers import DROP, HANG, RESET, Rule
from ternlib import TERN

DOMAIN = "hostile.test"
RECIPIENT = "kate@" + DOMAIN
NOT_UTF8 = b"\xff\xfe\xc3\x28 \xed\xa0\x80 \xf8\x88\x80\x80\x80"  # no valid UTF-8 reading

HOSTILE = {
    "invalid UTF-8 in the greeting": dict(greeting=b"421 4.3.2 " + NOT_UTF8 + b" busy\r\n"),
    "invalid UTF-8 in the EHLO reply": dict(rules=[Rule("HELO", b"451 4.3.0 " + NOT_UTF8 + b"\r\n")]),
    "invalid UTF-8 in extension lines, then a RCPT deferral": dict(rules=[
        Rule("HELO", b"250-mx.hostile.test " + NOT_UTF8 + b"\r\n250-X-" + NOT_UTF8 + b"\r\n250 PIPELINING\r\n"),
        Rule("RCPT", b"450 4.2.0 " + NOT_UTF8 + b" mailbox busy\r\n")]),
    "invalid UTF-8 in the RCPT reply": dict(rules=[Rule("RCPT", b"451 4.7.1 " + NOT_UTF8 + b" greylisted\r\n")]),
    "invalid UTF-8 in the final reply": dict(rules=[Rule("DOT", b"452 4.3.1 " + NOT_UTF8 + b"\r\n")]),
    "control bytes and escapes in a reply": dict(
        rules=[Rule("RCPT", b"451 4.3.0 \x1b[2J\x1b]0;owned\x07\x00\x08 try later\r\n")]),
    "a 100 KB reply line": dict(rules=[Rule("RCPT", b"451 4.3.0 " + b"x" * 100_000 + b"\r\n")]),
    "a 100 KB greeting without a line end": dict(greeting=b"220 " + b"y" * 100_000),
    "endless continuation lines": dict(rules=[Rule("HELO", b"250-mx.hostile.test\r\n" + b"250-MORE\r\n" * 200_000)]),
    "never answers": dict(hang="CONNECT"),
    "never answers after the data": dict(rules=[Rule("DOT", HANG)]),
    "accepts, then resets the connection": dict(rules=[Rule("RCPT", RESET)]),
    "resets in the middle of the data": dict(rules=[Rule("BODY", RESET)]),
    "closes after MAIL FROM": dict(rules=[Rule("MAIL", DROP)]),
}


def queue_list_json(tern):
    """`tern queue list --json` as the bytes it printed, parsed strictly (UTF-8 JSON)."""
    out = subprocess.run([TERN, "queue", "list", "--json", "--config", str(tern.config)],
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.decode("utf-8"))  # raises on invalid UTF-8 or JSON


def recipient_state(tern):
    if tern.proc.poll() is not None:  # fail at once, with why, instead of timing out
        raise AssertionError("tern serve died: " + "".join(tern.stderr_lines) + tern.proc.stderr.read())
    for message in queue_list_json(tern):
        for r in message["recipients"]:
            if r["address"] == RECIPIENT:
                return message["id"], r["status"], r.get("last_reply", "")
    return None


@pytest.mark.parametrize("behaviour", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_next_hop(mta, behaviour):
    a = mta.address()
    peer = mta.peer(a, **behaviour)
    mta.dns(mx=[(DOMAIN, "mx." + DOMAIN, 10)], hosts=[("mx." + DOMAIN, a)])
    tern = mta.tern(retry='["1h"]')
    mta.send(tern, "chris@example.test", [RECIPIENT])

    found = wait_until(lambda: (s := recipient_state(tern)) and s[1] == "deferred" and s,
                       timeout=60, what="the deferral")
    qid, status, reply = found
    assert re.match(r"4\d\d 4\.\d{1,3}\.\d{1,3} \S", reply), reply
    assert len(reply) < 2000, len(reply)
    # What a person reads: no escape sequence or control byte from the peer
    # reaches the terminal (issue 8 item 1).
    show = subprocess.run([TERN, "queue", "show", str(qid), "--config", str(tern.config)],
                          capture_output=True, timeout=60)
    assert show.returncode == 0, show.stderr
    assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", show.stdout), show.stdout
    assert peer.sessions, "the peer was never contacted"

    # The server goes on: a new session is served, and local mail delivered.
    assert tern.proc.poll() is None, "".join(tern.stderr_lines)
    with smtplib.SMTP("127.0.0.1", tern.port, timeout=30) as s:
        assert s.ehlo("client.test")[0] == 250
        assert s.noop()[0] == 250
        assert s.sendmail("chris@example.test", ["kate@example.test"], "Subject: after\r\n\r\nstill here\r\n") == {}
    wait_for_maildir(tern, "kate")
    assert recipient_state(tern)[1] == "deferred"
    assert tern.stop() == 0
