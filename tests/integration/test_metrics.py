"""SPEC §5: GET /metrics on the admin listener ([admin]), read with the real
Prometheus text parser (prometheus_client): the counters, gauges and
histograms move with the traffic, and no label value names an address, a
domain or a host."""
import re
import smtplib
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from delivery_env import mta, wait_for_maildir, wait_until  # noqa: F401 (fixture)
from pgcluster import pg, tern_config  # noqa: F401 (fixture)
from ternlib import Client, TernServer, free_port

FABRIKAM = "fabrikam.test"
LABEL_KEYS = {"listener", "via", "state", "class", "le"}


def admin_extra(folder, port):
    return f'[admin]\naddress = "127.0.0.1:{port}"\ntoken_file = "{folder / "admin.token"}"\n'


def scrape(port):
    """Every sample of /metrics, parsed by prometheus_client (which raises on
    anything that is not the text format), as {(name, labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers.get("Content-Type", "").startswith("text/plain")
        text = r.read().decode("utf-8")
    families = list(text_string_to_metric_families(text))
    out = {}
    for f in families:
        for s in f.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"sample twice: {key}"
            out[key] = s.value
    out["_types"] = {f.name: f.type for f in families}
    assert len(out["_types"]) == len(families), "two families of one name"
    return out


def v(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))))


def assert_bounded(m):
    addressy = re.compile(r"@|example\.test|fabrikam\.test|contoso|127\.0\.0\.|\[")
    for key in m:
        if key == "_types":
            continue
        name, labels = key
        for k, value in labels:
            assert k in LABEL_KEYS, key
            assert not addressy.search(value), key
            if k == "listener":
                assert value == "default", key


def test_counters_follow_the_traffic(mta, tmp_path):
    port = free_port()
    a = mta.address()
    peer = mta.peer(a, defer={"RCPT": 1})  # the first attempt is deferred, the second delivers
    mta.dns(mx=[(FABRIKAM, "mx.fabrikam.test", 10)], hosts=[("mx.fabrikam.test", a)])
    tern = mta.tern(extra=admin_extra(tmp_path, port))

    before = scrape(port)
    types = before["_types"]
    # SPEC §5's series, with their types (counters lose _total in the parser's family names).
    assert types["tern_messages_received"] == "counter"
    assert types["tern_messages_delivered"] == "counter"
    assert types["tern_messages_deferred"] == "counter"
    assert types["tern_messages_failed"] == "counter"
    assert types["tern_queue_messages"] == "gauge"
    assert types["tern_smtp_connections"] == "gauge"
    assert types["tern_delivery_duration_seconds"] == "histogram"
    assert types["tern_spool_commit_seconds"] == "histogram"
    received0 = v(before, "tern_messages_received_total", listener="default")
    maildir0 = v(before, "tern_messages_delivered_total", via="maildir")
    assert received0 == 0 and maildir0 == 0
    assert v(before, "tern_smtp_connections", listener="default") == 0
    assert v(before, "tern_start_time_seconds") > 1.6e9

    # An open connection is in the gauge while it lasts.
    with Client(tern.port) as c:
        assert c.reply().startswith("220 ")
        wait_until(lambda: v(scrape(port), "tern_smtp_connections", listener="default") == 1,
                   what="one open connection in tern_smtp_connections")
        assert c.cmd("EHLO contoso.com").startswith("250")
        assert c.cmd("MAIL FROM:<chris@contoso.com>").startswith("250")
        assert c.cmd("RCPT TO:<nobody@example.test>").startswith("550")  # a class-5 reply
        c.cmd("QUIT")
    wait_until(lambda: v(scrape(port), "tern_smtp_connections", listener="default") == 0,
               what="no open connection")

    n = 3
    for i in range(n):
        mta.send(tern, "chris@example.test", ["kate@example.test"], body=f"Subject: m{i}\r\n\r\nx\r\n")
    mta.send(tern, "chris@example.test", ["kate@fabrikam.test"])
    wait_for_maildir(tern, "kate", n)
    peer.wait_for_messages(1, timeout=60)

    def settled():
        m = scrape(port)
        return (v(m, "tern_messages_delivered_total", via="maildir") == n
                and v(m, "tern_messages_delivered_total", via="smtp") == 1
                and v(m, "tern_queue_messages", state="queued") == 0
                and v(m, "tern_queue_messages", state="active") == 0
                and v(m, "tern_queue_messages", state="deferred") == 0) and m
    after = wait_until(settled, timeout=30, what="the deliveries counted and the queue empty")

    assert v(after, "tern_messages_received_total", listener="default") == n + 1
    assert v(after, "tern_messages_delivered_total", via="lmtp") == 0
    assert v(after, "tern_messages_deferred_total") == 1  # the peer's first 451
    assert v(after, "tern_messages_failed_total") == 0
    assert v(after, "tern_smtp_connections_accepted_total", listener="default") == n + 2
    assert v(after, "tern_smtp_connections_refused_total", listener="default") == 0
    assert v(after, "tern_smtp_replies_total", listener="default", **{"class": "5"}) == 1
    assert v(after, "tern_smtp_replies_total", listener="default", **{"class": "3"}) == n + 1  # 354
    assert v(after, "tern_smtp_replies_total", listener="default", **{"class": "2"}) >= 5 * (n + 1)
    assert v(after, "tern_queue_messages", state="held") == 0
    assert v(after, "tern_queue_messages", state="quarantined") == 0
    # Histograms: one observation per Maildir delivery, one per remote attempt
    # (the deferred one and the delivery); cumulative buckets end at _count.
    assert v(after, "tern_delivery_duration_seconds_count", via="maildir") == n
    assert v(after, "tern_delivery_duration_seconds_count", via="smtp") == 2
    for via in ("maildir", "smtp"):
        assert v(after, "tern_delivery_duration_seconds_bucket", via=via, le="+Inf") == \
            v(after, "tern_delivery_duration_seconds_count", via=via)
        assert v(after, "tern_delivery_duration_seconds_sum", via=via) > 0
    assert v(after, "tern_spool_commit_seconds_count") > n + 1  # the accepts and the outcomes
    assert v(after, "tern_spool_commit_seconds_count") == v(after, "tern_spool_commit_seconds_bucket", le="+Inf")
    assert v(after, "tern_uptime_seconds") >= 0
    assert_bounded(before)
    assert_bounded(after)


def test_queue_gauge_shows_deferred_mail(mta, tmp_path):
    port = free_port()
    a = mta.address()
    peer = mta.peer(a, defer={"RCPT": 1000})  # always 451
    mta.dns(mx=[(FABRIKAM, "mx.fabrikam.test", 10)], hosts=[("mx.fabrikam.test", a)])
    tern = mta.tern(extra=admin_extra(tmp_path, port), retry='["1h"]')
    mta.send(tern, "chris@example.test", ["kate@fabrikam.test", "bob@fabrikam.test"])
    mta.send(tern, "chris@example.test", ["dan@fabrikam.test"])

    def deferred():
        m = scrape(port)
        return v(m, "tern_queue_messages", state="deferred") == 2 and m
    m = wait_until(deferred, timeout=30, what="two deferred messages in tern_queue_messages")
    assert v(m, "tern_queue_messages", state="queued") == 0
    assert v(m, "tern_queue_messages", state="active") == 0
    assert v(m, "tern_messages_deferred_total") == 3  # per recipient
    assert v(m, "tern_messages_delivered_total", via="smtp") == 0
    assert peer.sessions  # the peer was asked
    assert_bounded(m)


def test_queue_gauge_on_the_shared_spool(pg, tmp_path):
    """On the PostgreSQL spool the queue is the cluster's: counted by the database."""
    port = free_port()
    tern = TernServer(tmp_path / "tern", tern_config(pg.conninfo, extra=admin_extra(tmp_path, port))).start()
    for i in range(3):  # delivery disabled: the mail stays queued
        with smtplib.SMTP("127.0.0.1", tern.port, timeout=30) as s:
            s.sendmail("chris@contoso.com", ["kate@example.test"], f"Subject: {i}\r\n\r\nx\r\n")
    ids = pg.sql("SELECT id FROM messages ORDER BY id").split()
    assert len(ids) == 3
    m = scrape(port)
    assert v(m, "tern_queue_messages", state="queued") == 3
    assert v(m, "tern_messages_received_total", listener="default") == 3
    assert v(m, "tern_spool_commit_seconds_count") >= 1
    pg.sql(f"UPDATE messages SET next_attempt = next_attempt + 3600000 WHERE id = {ids[0]}")
    pg.sql(f"UPDATE messages SET held = 'held by the administrator' WHERE id = {ids[1]}")
    pg.sql(f"UPDATE messages SET held = 'unreadable envelope: test' WHERE id = {ids[2]}")
    m = scrape(port)
    assert [v(m, "tern_queue_messages", state=s) for s in ("queued", "active", "deferred", "held", "quarantined")] \
        == [0, 0, 1, 1, 1]
    assert_bounded(m)
    assert tern.stop() == 0
