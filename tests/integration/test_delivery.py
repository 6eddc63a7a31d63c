"""Outbound delivery end to end (SPEC §4): a real tern relays through real
DNS (dnsmasq) to scripted SMTP peers on other loopback addresses — preferred
MX first, failover, A fallback, retries after 4xx, and peers that misbehave."""
import re

from delivery_env import queue_state, tracking, wait_until
from peers import GARBAGE

FABRIKAM = "fabrikam.test"


def two_mx(mta, a, b):
    mta.dns(mx=[(FABRIKAM, "mx1.fabrikam.test", 10), (FABRIKAM, "mx2.fabrikam.test", 20)],
            hosts=[("mx1.fabrikam.test", a), ("mx2.fabrikam.test", b)])


def test_delivery_to_the_preferred_mx(mta):
    a, b = mta.address(), mta.address()
    first, second = mta.peer(a), mta.peer(b)
    two_mx(mta, a, b)
    tern = mta.tern()
    mta.send(tern, "chris@example.test", ["kate@fabrikam.test"], mail_options=["RET=HDRS", "ENVID=e-1"],
             rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
    [msg] = first.wait_for_messages(1)
    assert msg.mail_from == "chris@example.test" and msg.recipients == ["kate@fabrikam.test"]
    # DSN parameters passed on to a next hop that supports DSN
    assert msg.mail_params.get("RET") == "HDRS" and msg.mail_params.get("ENVID") == "e-1"
    assert msg.rcpt_params["kate@fabrikam.test"]["NOTIFY"] == "SUCCESS,FAILURE"
    assert "Received: from client.test ([127.0.0.1])" in msg.text and "Subject: test" in msg.text
    assert second.sessions == []
    wait_until(lambda: tern.queue_json() == [], what="an empty queue")
    assert tern.stop() == 0
    sends = [r for r in tracking(tern) if r[1] == "SEND"]
    assert len(sends) == 1 and sends[0][5] == "kate@fabrikam.test" and sends[0][6].startswith("mx1.fabrikam.test[" + a)


def test_failover_when_the_preferred_mx_is_down(mta):
    down, b = mta.address(), mta.address()  # nothing listens on `down`
    second = mta.peer(b)
    two_mx(mta, down, b)
    tern = mta.tern()
    mta.send(tern, "chris@example.test", ["kate@fabrikam.test", "bob@fabrikam.test"])
    [msg] = second.wait_for_messages(1)
    assert sorted(msg.recipients) == ["bob@fabrikam.test", "kate@fabrikam.test"]  # one transaction
    wait_until(lambda: tern.queue_json() == [], what="an empty queue")


def test_451_is_retried_then_delivered(mta):
    a = mta.address()
    peer = mta.peer(a, defer={"RCPT": 1})
    mta.dns(mx=[(FABRIKAM, "mx.fabrikam.test", 10)], hosts=[("mx.fabrikam.test", a)])
    tern = mta.tern()
    mta.send(tern, "chris@example.test", ["kate@fabrikam.test"])
    [msg] = peer.wait_for_messages(1, timeout=60)
    assert msg.session_id >= 1  # the first session (0) got 451
    wait_until(lambda: tern.queue_json() == [], what="an empty queue")
    tern.stop()
    events = [r[1] for r in tracking(tern)]
    assert events[:3] == ["RECEIVE", "DEFER", "SEND"], events


def test_domain_with_only_an_a_record(mta):
    a = mta.address()
    peer = mta.peer(a)
    mta.dns(hosts=[("aonly.test", a)])
    tern = mta.tern()
    mta.send(tern, "chris@example.test", ["kate@aonly.test"])
    [msg] = peer.wait_for_messages(1)
    assert msg.recipients == ["kate@aonly.test"]


def test_connection_reuse_for_one_destination(mta):
    a = mta.address()
    peer = mta.peer(a)
    mta.dns(mx=[(FABRIKAM, "mx.fabrikam.test", 10)], hosts=[("mx.fabrikam.test", a)])
    tern = mta.tern(delivery="max_per_destination = 1\n")  # one connection at a time to fabrikam.test
    for i in range(5):
        mta.send(tern, "chris@example.test", [f"user{i}@fabrikam.test"], body=f"Subject: {i}\r\n\r\nx\r\n")
    peer.wait_for_messages(5)
    assert len(peer.sessions) == 1  # the kept connection carried every message


BAD_PEERS = {
    "drops mid-DATA": dict(drop="BODY"),
    "600-line EHLO": dict(ehlo_lines=600),
    "never answers": dict(hang="CONNECT"),
    "garbage greeting": dict(greeting=GARBAGE),
    "421 greeting": dict(greeting="421 4.3.2 Service not available"),
}


def test_misbehaving_peers_defer_and_the_queue_goes_on(mta):
    hosts, peers = {}, {}
    for i, (name, behaviour) in enumerate(BAD_PEERS.items()):
        hosts[name] = mta.address()
        peers[name] = mta.peer(hosts[name], **behaviour)
    good = mta.address()
    good_peer = mta.peer(good)
    domains = {name: f"bad{i}.test" for i, name in enumerate(BAD_PEERS)}
    mta.dns(mx=[(d, f"mx.{d}", 10) for d in domains.values()] + [(FABRIKAM, "mx.fabrikam.test", 10)],
            hosts=[(f"mx.{d}", hosts[name]) for name, d in domains.items()] + [("mx.fabrikam.test", good)])
    tern = mta.tern(retry='["1h"]')
    for name, domain in domains.items():
        mta.send(tern, "chris@example.test", [f"kate@{domain}"])
    mta.send(tern, "chris@example.test", ["kate@fabrikam.test"])
    good_peer.wait_for_messages(1)

    def all_deferred():
        state = queue_state(tern)
        return all(state.get(f"kate@{d}", ("",))[0] == "deferred" for d in domains.values()) and state
    state = wait_until(all_deferred, timeout=60, what="every bad peer deferred")
    for name, domain in domains.items():
        status, reply = state[f"kate@{domain}"]
        assert re.match(r"4\d\d 4\.\d\.\d+ ", reply), (name, reply)
    assert "kate@fabrikam.test" not in state
    assert tern.stop() == 0


def test_mx_pointing_nowhere_is_a_clear_deferral(mta):
    mta.dns(mx=[(FABRIKAM, "mx.nowhere.test", 10)])
    tern = mta.tern(retry='["1h"]')
    [q] = mta.send(tern, "chris@example.test", ["kate@fabrikam.test"])
    state = wait_until(lambda: queue_state(tern).get("kate@fabrikam.test", ("",))[0] == "deferred" and queue_state(tern),
                       what="a deferral")
    reply = state["kate@fabrikam.test"][1]
    assert reply.startswith("451 4.4.") and "mx.nowhere.test" in reply, reply
    show = tern.queue("show", str(q["id"])).stdout
    assert "deferred" in show and "mx.nowhere.test" in show


def test_hang_peer_times_out_within_the_configured_time(mta):
    a = mta.address()
    mta.peer(a, hang="CONNECT")
    mta.dns(hosts=[("slow.test", a)])
    tern = mta.tern(retry='["1h"]')
    mta.send(tern, "chris@example.test", ["kate@slow.test"])
    state = wait_until(lambda: queue_state(tern).get("kate@slow.test", ("",))[0] == "deferred" and queue_state(tern),
                       timeout=30, what="a deferral")
    assert "timed out" in state["kate@slow.test"][1].lower(), state
