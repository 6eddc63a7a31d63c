"""Issue 10, SPEC §6: several tern nodes share one PostgreSQL-held queue. Any
node delivers what any node accepted, `tern queue` on any node shows the one
queue, a node killed with SIGKILL loses nothing (another node takes its
messages once their lease runs out), and neither does the database primary's
death when a synchronous standby is promoted and the nodes use a multi-host
connection string. The database is a private PostgreSQL 15 the tests start
(pgcluster.py); both nodes deliver into one Maildir, so a message delivered
by both would show up twice there."""
import random
import threading

from delivery_env import maildir_tags, wait_until
from pgcluster import multi_host_conninfo, pg  # noqa: F401 (the fixture)
from ternlib import QUEUED, Client, TernServer, send_until_stopped



def node_config(name, conninfo, maildir, delivery=True, lease="3s"):
    return f"""\
hostname = "mail.example.test"
[spool]
backend = "postgres"
postgres = "{conninfo}"
path = "spool"
[cluster]
node = "{name}"
lease = "{lease}"
[domains]
accepted = ["example.test"]
[[mailbox]]
address = "kate@example.test"
maildir = "{maildir}"
[[mailbox]]
address = "postmaster@example.test"
maildir = "{maildir}-postmaster"
[log]
directory = "log"
[sender_auth]
verify = false
[queue]
retry = ["1s"]
[delivery]
enabled = {"true" if delivery else "false"}
max_local_deliveries = 4
[[listener]]
name = "default"
address = "127.0.0.1:0"
"""


def send_one(port, tag):
    """One message to kate@example.test with Subject tag; its InternalId."""
    with Client(port) as c:
        c.start_data()
        c.send(f"Subject: {tag}\r\n\r\nhello\r\n.\r\n")
        m = QUEUED.match(c.reply())
        assert m, "the message was not queued"
        return int(m.group(1))


def ids(listing):
    return sorted(m["id"] for m in listing)


def test_any_node_delivers_what_another_accepted_and_both_show_one_queue(pg, tmp_path):
    maildir = tmp_path / "a" / "mail" / "kate"
    a = TernServer(tmp_path / "a", node_config("mx-a", pg.conninfo, maildir, delivery=False)).start()
    b = TernServer(tmp_path / "b", node_config("mx-b", pg.conninfo, maildir, delivery=True))
    try:
        sent = {}
        for i in range(20):
            tag = f"one-queue-{i}"
            sent[tag] = send_one(a.port, tag)
        listed_a, listed_b = a.queue_json(), b.queue_json()  # b not running: straight to the database
        assert ids(listed_a) == sorted(sent.values())
        assert ids(listed_b) == ids(listed_a)
        b.start()
        wait_until(lambda: len(maildir_tags(maildir)) == len(sent), timeout=60, what="20 messages in the Maildir")
        wait_until(lambda: a.queue_json() == [], timeout=30, what="an empty queue")
        assert b.queue_json() == []
        assert maildir_tags(maildir) == {t: 1 for t in sent}
        # b delivered them (its tracking log, complete once it stopped), a delivered nothing
        assert b.stop() == 0 and a.stop() == 0
        assert b.log_text("message-tracking").count("DELIVER") >= len(sent)
        assert "DELIVER" not in a.log_text("message-tracking")
    finally:
        a.stop()
        b.stop()


def sender(port, tag, acked, stop):
    send_until_stopped(port, stop, lambda i: f"{tag}-{i}", 100, acked.__setitem__)


def test_kill_9_of_a_node_loses_nothing_and_delivers_nothing_twice(pg, tmp_path):
    maildir = tmp_path / "a" / "mail" / "kate"
    a = TernServer(tmp_path / "a", node_config("mx-a", pg.conninfo, maildir)).start()
    b = TernServer(tmp_path / "b", node_config("mx-b", pg.conninfo, maildir)).start()
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    acked = {}
    try:
        for rnd in range(3):
            stop = threading.Event()
            threads = [threading.Thread(target=sender, args=(port, f"kill-{rnd}-{n}", acked, stop))
                       for n, port in enumerate([a.port, a.port, b.port])]
            for t in threads:
                t.start()
            want = len(acked) + rng.randrange(20, 120)
            wait_until(lambda: len(acked) >= want or not all(t.is_alive() for t in threads),
                       timeout=30, what="messages acknowledged", interval=0.002)
            a.kill()  # mid-load: a holds leases on messages it was delivering
            stop.set()
            for t in threads:
                t.join(timeout=20)
                assert not t.is_alive(), "a sender did not end"
            # b alone takes a's messages once their leases run out
            wait_until(lambda: b.queue_json() == [], timeout=90, what="an empty queue")
            a.start()
        counts = maildir_tags(maildir)
        missing = sorted(t for t in acked if counts.get(t, 0) == 0)
        twice = sorted(t for t, n in counts.items() if n > 1)
        assert len(acked) >= 60, f"too few messages acknowledged to mean anything (seed {seed})"
        assert not missing, f"{len(missing)} acknowledged message(s) never delivered, e.g. {missing[:5]} (seed {seed})"
        print(f"cluster kill -9: {len(acked)} acknowledged, {len(twice)} delivered twice (seed {seed})")
        assert not twice, f"{len(twice)} delivered more than once, e.g. {twice[:5]} (seed {seed})"
    finally:
        a.stop()
        b.stop()


def test_the_primary_dies_and_a_promoted_synchronous_standby_has_every_acknowledged_message(pg, tmp_path):
    standby = pg.standby()  # pg_basebackup -R, synchronous_standby_names on the primary
    conninfo = multi_host_conninfo(pg, standby)
    maildir = tmp_path / "a" / "mail" / "kate"
    a = TernServer(tmp_path / "a", node_config("mx-a", conninfo, maildir, delivery=False)).start()
    acked = {}
    try:
        stop = threading.Event()
        threads = [threading.Thread(target=sender, args=(a.port, f"failover-{n}", acked, stop)) for n in range(3)]
        for t in threads:
            t.start()
        wait_until(lambda: len(acked) >= 100, timeout=60, what="100 messages acknowledged", interval=0.002)
        pg.kill9()  # the primary dies during the load
        standby.promote()
        before = len(acked)
        # The load goes on: tern reconnects to the promoted standby and accepts again.
        wait_until(lambda: len(acked) >= before + 50 or not any(t.is_alive() for t in threads),
                   timeout=60, what="acceptance after the failover", interval=0.01)
        if not any(t.is_alive() for t in threads):  # the senders gave up during the outage: a new one
            threads = [threading.Thread(target=sender, args=(a.port, "failover-after", acked, stop))]
            threads[0].start()
            wait_until(lambda: len(acked) >= before + 50, timeout=60, what="acceptance after the failover")
        stop.set()
        for t in threads:
            t.join(timeout=20)
        b = TernServer(tmp_path / "b", node_config("mx-b", conninfo, maildir)).start()
        try:
            wait_until(lambda: b.queue_json() == [], timeout=90, what="an empty queue")
        finally:
            b.stop()
        counts = maildir_tags(maildir)
        missing = sorted(t for t in acked if counts.get(t, 0) == 0)
        assert not missing, f"{len(missing)} acknowledged message(s) lost in the failover, e.g. {missing[:5]}"
        assert all(n == 1 for n in counts.values())
    finally:
        a.stop()
        standby.stop()


def test_queue_actions_from_any_node(pg, tmp_path):
    """tern queue delete and bounce on the cluster's queue from another node's
    configuration (that node is not even running): the actions reach the one
    queue; the bounce leaves its failure notice (from <>) queued."""
    maildir = tmp_path / "a" / "mail" / "kate"
    a = TernServer(tmp_path / "a", node_config("mx-a", pg.conninfo, maildir, delivery=False)).start()
    b = TernServer(tmp_path / "b", node_config("mx-b", pg.conninfo, maildir, delivery=False))
    try:
        deleted = send_one(a.port, "to-delete")
        bounced = send_one(a.port, "to-bounce")
        out = b.queue("delete", str(deleted))
        assert out.returncode == 0, out.stderr
        out = b.queue("bounce", str(bounced))
        assert out.returncode == 0, out.stderr
        assert "returned to the sender" in out.stdout
        listing = a.queue_json()
        assert deleted not in ids(listing) and bounced not in ids(listing)
        notices = [m for m in listing if m["sender"] == ""]
        assert len(notices) == 1, listing
        out = b.queue("delete", "999999999")
        assert out.returncode != 0 and "no message with InternalId 999999999" in out.stderr
    finally:
        a.stop()
