"""Where delivery may connect, and what one attempt may cost (SPEC §2
[delivery] private_networks, SPEC §4 Robustness; issue 8 item 5), against a
real tern, dnsmasq and scripted peers on loopback addresses:

- addresses from DNS and address literals in the envelope (recipients, and
  the original sender a success notice goes back to) are refused when they
  are special-use, unless private_networks lists them, and the reason shows
  in `tern queue show` and the tracking log;
- one attempt tries at most 5 MX hosts and ends within attempt_timeout;
- a tarpit holding every remote slot does not hold local delivery back;
- a bare CR stored in a body goes out as CR LF (item 6).

Loopback addresses stand for every special-use range: the policy's table is
checked address by address in tests/unit/next_hop_policy_test.cpp.
"""
import re
import smtplib

import pytest

from delivery_env import queue_state, tracking, wait_for_maildir, wait_until
from peers import HANG, Rule
from ternlib import Client

FABRIKAM = "fabrikam.test"
REFUSED = "skipped: loopback address (RFC 6890), not in [delivery] private_networks"


def state_of(tern, address, status):
    return wait_until(lambda: queue_state(tern).get(address, ("",))[0] == status and queue_state(tern),
                      timeout=30, what=f"{address} {status}")[address]


def tracked(tern, event, recipient):
    """Tracking log rows of this event for this recipient (a stopped tern's whole log)."""
    return [r for r in tracking(tern) if r[1] == event and r[5] == recipient]


def test_loopback_from_dns_is_refused_without_private_networks(mta):
    a = mta.address()
    peer = mta.peer(a)
    mta.dns(mx=[(FABRIKAM, "mx.fabrikam.test", 10)], hosts=[("mx.fabrikam.test", a)])
    tern = mta.tern(retry='["1h"]', private_networks=None)  # tern's default: none
    [q] = mta.send(tern, "chris@example.test", ["kate@fabrikam.test"])
    status, reply = state_of(tern, "kate@fabrikam.test", "deferred")
    # DNS may be mended before the message expires: a deferral, like Postfix.
    assert reply.startswith("451 4.4.4 No address of fabrikam.test may be used: "), reply
    assert f"mx.fabrikam.test: {a} {REFUSED}" in reply, reply
    show = tern.queue("show", str(q["id"])).stdout
    assert f"{a} {REFUSED}" in show, show
    assert tern.stop() == 0
    [defer] = tracked(tern, "DEFER", "kate@fabrikam.test")
    assert f"{a} {REFUSED}" in defer[-1], defer
    assert peer.sessions == []  # the attempt ended without a connection


def test_private_networks_lets_the_listed_addresses_through(mta):
    refused, allowed = mta.address(), mta.address()
    first, second = mta.peer(refused), mta.peer(allowed)
    mta.dns(mx=[(FABRIKAM, "mx1.fabrikam.test", 10), (FABRIKAM, "mx2.fabrikam.test", 20)],
            hosts=[("mx1.fabrikam.test", refused), ("mx2.fabrikam.test", allowed)])
    tern = mta.tern(private_networks=f'["{allowed}/32"]')
    mta.send(tern, "chris@example.test", ["kate@fabrikam.test"])
    [msg] = second.wait_for_messages(1)
    assert msg.recipients == ["kate@fabrikam.test"]
    wait_until(lambda: tern.queue_json() == [], what="an empty queue")
    assert first.sessions == []  # the preferred MX was skipped, not tried


def test_route_next_hop_is_always_allowed(mta):
    a = mta.address()
    peer = mta.peer(a)
    tern = mta.tern(private_networks=None, extra=f'[[route]]\ndomain = "*"\nnext_hop = "[{a}]:25"\n')
    mta.send(tern, "chris@example.test", ["kate@fabrikam.test"])
    peer.wait_for_messages(1)


def test_address_literal_recipient_fails_at_once(mta):
    a = mta.address()
    peer = mta.peer(a)
    tern = mta.tern(private_networks=None)
    literal = f"kate@[{a}]"
    mta.send(tern, "postmaster@example.test", [literal])
    [notice] = wait_for_maildir(tern, "postmaster")  # the failure notice, at once
    text = " ".join(notice.read_text(errors="replace").split())  # unfolded
    assert f"<{literal}>: 550 5.4.4 Mail for [{a}] not sent: {a} {REFUSED}" in text, text
    assert tern.stop() == 0
    [fail] = tracked(tern, "FAIL", literal)
    assert f"{a} {REFUSED}" in fail[-1], fail
    assert peer.sessions == []


def test_address_literal_recipient_delivered_when_listed(mta):
    a = mta.address()
    peer = mta.peer(a)
    tern = mta.tern()  # private_networks has 127.0.0.0/8
    mta.send(tern, "chris@example.test", [f"kate@[{a}]", "bob@[IPv6:::ffff:" + a + "]"])
    msgs = peer.wait_for_messages(2)
    assert sorted(r for m in msgs for r in m.recipients) == sorted([f"kate@[{a}]", f"bob@[IPv6:::ffff:{a}]"])


def test_success_notice_to_an_address_literal_sender_is_not_sent(mta):
    """MAIL FROM:<x@[127.0.0.N]> with NOTIFY=SUCCESS would make tern connect to
    any internal host with its notice; the notice fails instead."""
    a = mta.address()
    peer = mta.peer(a)
    tern = mta.tern(private_networks=None)
    sender = f"probe@[{a}]"
    mta.send(tern, sender, ["kate@example.test"], rcpt_options=["NOTIFY=SUCCESS"])
    wait_for_maildir(tern, "kate")
    wait_until(lambda: tern.queue_json() == [], what="the notice to leave the queue")
    assert tern.stop() == 0
    [dsn] = [r for r in tracking(tern) if r[1] == "DSN"]
    [fail] = tracked(tern, "FAIL", sender)
    assert f"550 5.4.4 Mail for [{a}] not sent: {a} {REFUSED}" in fail[-1], fail
    assert peer.sessions == []


def test_one_attempt_tries_at_most_five_mx_hosts(mta):
    hosts = [mta.address() for _ in range(7)]
    peers = [mta.peer(h, greeting="421 4.3.2 Busy, try another MX") for h in hosts]
    mta.dns(mx=[(FABRIKAM, f"mx{i}.fabrikam.test", 10 * (i + 1)) for i in range(7)],
            hosts=[(f"mx{i}.fabrikam.test", h) for i, h in enumerate(hosts)])
    tern = mta.tern(retry='["1h"]')
    mta.send(tern, "chris@example.test", ["kate@fabrikam.test"])
    status, reply = state_of(tern, "kate@fabrikam.test", "deferred")
    assert [len(p.sessions) for p in peers] == [1, 1, 1, 1, 1, 0, 0], reply
    assert "mx5.fabrikam.test not tried (at most 5 MX hosts and 10 addresses per attempt)" in reply, reply
    assert "mx6.fabrikam.test not tried" in reply, reply


def test_attempt_timeout_ends_a_slow_transaction(mta):
    a = mta.address()
    mta.peer(a, rules=[Rule("RCPT", HANG)])  # answers until RCPT, then never again
    mta.dns(mx=[(FABRIKAM, "mx.fabrikam.test", 10)], hosts=[("mx.fabrikam.test", a)])
    # Each command may take a minute, the whole attempt two seconds.
    tern = mta.tern(retry='["1h"]', delivery='command_timeout = "60s"\nattempt_timeout = "2s"\n')
    mta.send(tern, "chris@example.test", ["kate@fabrikam.test"])
    status, reply = state_of(tern, "kate@fabrikam.test", "deferred")
    assert re.match(r"451 4\.4\.2 Connection with mx\.fabrikam\.test\[[\d.]+\]:25 reached the end of the "
                    r"delivery attempt's time \(\[delivery\] attempt_timeout\) waiting for the reply to ", reply), reply


def test_tarpit_holding_every_remote_slot_does_not_stop_local_delivery(mta):
    a = mta.address()
    tarpit = mta.peer(a, hang="CONNECT")  # accepts, then never says a word
    mta.dns(mx=[("tarpit.test", "mx.tarpit.test", 10)], hosts=[("mx.tarpit.test", a)])
    tern = mta.tern(retry='["1h"]', delivery='command_timeout = "120s"\nmax_connections = 2\n')
    for i in range(3):  # two attempts take both remote slots, the third waits for one
        mta.send(tern, "chris@example.test", [f"user{i}@tarpit.test"])
    tarpit.wait_for_sessions(2, ended=False)
    mta.send(tern, "chris@example.test", ["kate@example.test"])
    wait_for_maildir(tern, "kate")
    wait_until(lambda: "kate@example.test" not in queue_state(tern), what="the local message done")
    # Delivered and recorded while the tarpit still held both remote slots.
    sessions = tarpit.sessions
    assert len(sessions) == 2 and not any(s.ended for s in sessions), tarpit.transcripts()
    assert all(queue_state(tern)[f"user{i}@tarpit.test"][0] == "queued" for i in range(3))
    # The server still takes mail meanwhile.
    with smtplib.SMTP("127.0.0.1", tern.port, timeout=30) as s:
        assert s.noop()[0] == 250


SMUGGLED_ENDS = {"CR.CR": b"\r.\r", "CR.CRLF": b"\r.\r\n", "CRLF.CR": b"\r\n.\r"}


@pytest.mark.parametrize("name", SMUGGLED_ENDS)
def test_bare_cr_never_reaches_the_next_hop(mta, name):
    """Issue 8 item 6: a body stored with "<CR>.<CR>" (content for tern) goes
    out with CR LF only, so a next hop that ends data at <CR>.<CR> cannot be
    made to see a second, smuggled message."""
    a = mta.address()
    peer = mta.peer(a)
    mta.dns(mx=[(FABRIKAM, "mx.fabrikam.test", 10)], hosts=[("mx.fabrikam.test", a)])
    tern = mta.tern()
    smuggled = b"MAIL FROM:<admin@fabrikam.test>\r\nRCPT TO:<kate@fabrikam.test>\r\nDATA\r\nevil\r\n"
    with Client(tern.port) as c:
        c.start_data(sender="chris@example.test", recipient="kate@fabrikam.test")
        c.send(b"Subject: real\r\n\r\nfirst" + SMUGGLED_ENDS[name] + smuggled + b".\r\n")
        assert c.reply().startswith("250 2.6.0")
    [msg] = peer.wait_for_messages(1)
    wire = msg.raw + b".\r\n"
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", wire) is None, wire  # no bare CR, no bare LF
    assert b"first\r\n" in wire and b"MAIL FROM:<admin@fabrikam.test>\r\n" in wire
    assert [m.mail_from for m in peer.transactions] == ["chris@example.test"]
