"""The message trail (SPEC §1 `tern trail`, §5): every event of every recipient,
kept in the spool with the message and after it leaves the queue, found by
InternalId, Message-ID and address, while the server runs, when it is stopped
and after a restart; expired after [log] trail once the message is gone; the
same on the PostgreSQL spool, from a second node's configuration."""
import json
import re
import smtplib
import subprocess

import delivery_env
from delivery_env import queue_state, wait_for_maildir, wait_until
from pgcluster import tern_config
from ternlib import QUEUED, TERN, TernServer

FABRIKAM = "fabrikam.test"
GREYLISTED = "451 4.7.1 Greylisted, try again later"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LOCAL_ID = "<local-1@contoso.test>"
RELAY_ID = "<relay-2@contoso.test>"


def trail(server, what, *options, config=None):
    return subprocess.run([TERN, "trail", what, "--config", str(config or server.config), *options],
                          capture_output=True, text=True, timeout=60)


def trail_json(server, what, config=None):
    out = trail(server, what, "--json", config=config)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def events(server, what, config=None):
    out = trail(server, what, "--json", config=config)
    if out.returncode != 0:
        return []
    return [(e["event"], e["recipient"]) for e in json.loads(out.stdout)["events"]]


def wait_events(server, what, expected, config=None):
    """Trail writes are batched off the event loops: wait until they are there."""
    return wait_until(lambda: events(server, what, config) == expected and expected,
                      what=f"trail of {what}: {expected} (last: {events(server, what, config)})")


def send(tern, sender, recipients, body):
    """The InternalId from the reply to DATA (the message may be gone already)."""
    with smtplib.SMTP("127.0.0.1", tern.port, timeout=30) as s:
        s.ehlo("client.test")
        assert s.mail(sender)[0] == 250
        for r in recipients:
            assert s.rcpt(r)[0] == 250
        code, text = s.data(body.encode())
    assert code == 250, text
    return QUEUED.match(f"{code} {text.decode()}").group(1)


def greylisting_peer(mta):
    a = mta.address()
    mta.peer(a, defer={"RCPT": (100000, GREYLISTED)})
    mta.dns(mx=[(FABRIKAM, "mx.fabrikam.test", 10)], hosts=[("mx.fabrikam.test", a)])


def body(message_id, subject):
    return f"Message-ID: {message_id}\r\nSubject: {subject}\r\n\r\nbody\r\n"


def check_json_shape(document):
    assert list(document) == ["events"]
    for e in document["events"]:
        assert {"time", "event", "recipient", "remote_host", "reply"} <= set(e)
        assert ISO_MS.match(e["time"]), e["time"]
        assert all(isinstance(e[k], str) for k in ("event", "recipient", "remote_host", "reply"))
    times = [e["time"] for e in document["events"]]
    assert times == sorted(times)  # oldest first


def scenario(mta, tern, other_config=None):
    """A local delivery and a relayed message that defers and is bounced
    (greylisting_peer(mta) before the server starts)."""
    local_id = send(tern, "chris@contoso.test", ["kate@example.test"], body(LOCAL_ID, "local"))
    wait_for_maildir(tern, "kate")
    wait_events(tern, local_id, [("RECEIVE", "kate@example.test"), ("DELIVER", "kate@example.test")])

    relay_id = send(tern, "kate@example.test", ["bob@fabrikam.test", "ann@fabrikam.test"], body(RELAY_ID, "relay"))
    wait_until(lambda: queue_state(tern).get("bob@fabrikam.test", ("",))[0] == "deferred", what="bob deferred")
    doc = wait_until(lambda: (d := trail_json(tern, relay_id)) and
                     sum(e["event"] == "DEFER" for e in d["events"]) >= 2 and d, what="two DEFERs")
    check_json_shape(doc)
    assert [(e["event"], e["recipient"]) for e in doc["events"][:2]] == [
        ("RECEIVE", "bob@fabrikam.test"), ("RECEIVE", "ann@fabrikam.test")]
    receive = doc["events"][0]
    assert receive["remote_host"] == "127.0.0.1"
    defer = next(e for e in doc["events"] if e["event"] == "DEFER" and e["recipient"] == "bob@fabrikam.test")
    assert GREYLISTED in defer["reply"], defer
    assert defer["id"] == int(relay_id) and defer["message_id"] == RELAY_ID and defer["sender"] == "kate@example.test"

    out = tern.queue("bounce", relay_id)
    assert out.returncode == 0, out.stdout + out.stderr
    wait_for_maildir(tern, "kate", 2)  # the notice, besides the local message
    wait_until(lambda: tern.queue_json() == [], what="an empty queue")
    want = {("FAIL", "bob@fabrikam.test"), ("FAIL", "ann@fabrikam.test"), ("DSN", "kate@example.test")}
    wait_until(lambda: want <= set(events(tern, relay_id)), what="FAIL and DSN in the trail")
    full = events(tern, relay_id)
    assert full.index(("FAIL", "bob@fabrikam.test")) > full.index(("DEFER", "bob@fabrikam.test"))

    # The same message by its Message-ID (with or without <>, any case) and by address.
    assert events(tern, RELAY_ID) == full
    assert events(tern, RELAY_ID.strip("<>").upper()) == full
    by_bob = events(tern, "Bob@FABRIKAM.test")
    assert by_bob and all(r == "bob@fabrikam.test" for _, r in by_bob)
    assert ("FAIL", "bob@fabrikam.test") in by_bob
    by_sender = events(tern, "kate@example.test")  # sender of the relay, recipient of the local one
    assert set(full) <= set(by_sender) and ("DELIVER", "kate@example.test") in by_sender
    check_json_shape(trail_json(tern, "kate@example.test"))
    if other_config:  # another node of the cluster answers the same
        assert events(tern, relay_id, config=other_config) == full
    return local_id, relay_id, full


def human_lines(tern, what):
    out = trail(tern, what)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_trail_on_the_rocksdb_spool(mta):
    greylisting_peer(mta)
    tern = mta.tern(retry='["1h"]')
    local_id, relay_id, full = scenario(mta, tern)

    lines = human_lines(tern, local_id)
    assert lines[0].split()[:3] == ["Time", "(UTC)", "Event"]
    assert "RECEIVE" in lines[1] and "kate@example.test" in lines[1] and "127.0.0.1" in lines[1]
    assert "DELIVER" in lines[2]
    assert lines[-1].startswith("-- 2 event(s) of InternalId " + local_id)

    missing = trail(tern, "nobody@nowhere.test")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.splitlines() == ["tern: nothing in the trail for address nobody@nowhere.test"]

    # Stopped: the CLI reads the spool itself; then again after a restart.
    assert tern.stop() == 0
    assert events(tern, relay_id) == full
    tern.start()
    assert events(tern, relay_id) == full
    assert events(tern, LOCAL_ID) == [("RECEIVE", "kate@example.test"), ("DELIVER", "kate@example.test")]
    assert tern.stop() == 0


def set_retention(tern, value):
    text = re.sub(r'\ntrail = "[^"]*"\n', "\n", tern.config.read_text())
    assert 'directory = "log"\n' in text
    tern.config.write_text(text.replace('directory = "log"\n', f'directory = "log"\ntrail = "{value}"\n', 1))


def test_trail_expires_once_the_message_has_left_the_queue(mta):
    greylisting_peer(mta)
    tern = mta.tern(retry='["1h"]')
    done = send(tern, "chris@contoso.test", ["kate@example.test"], body(LOCAL_ID, "local"))
    wait_for_maildir(tern, "kate")
    waiting = send(tern, "kate@example.test", ["bob@fabrikam.test"], body(RELAY_ID, "relay"))
    wait_events(tern, done, [("RECEIVE", "kate@example.test"), ("DELIVER", "kate@example.test")])
    wait_until(lambda: ("DEFER", "bob@fabrikam.test") in events(tern, waiting), what="a DEFER")
    assert tern.stop() == 0

    set_retention(tern, "1s")
    tern.start()
    # The delivered message's trail goes at a sweep (at start, then every second) ...
    wait_until(lambda: trail(tern, done).returncode == 1, what="the delivered message's trail expired")
    assert trail(tern, "chris@contoso.test").returncode == 1  # its index entries went with it
    # ... the one still queued keeps its whole trail, however old.
    assert ("RECEIVE", "bob@fabrikam.test") in events(tern, waiting)
    assert tern.stop() == 0

    set_retention(tern, "0")
    off = trail(tern, waiting)
    assert off.returncode == 1 and "trail is off" in off.stderr and len(off.stderr.splitlines()) == 1


def pg_tern(mta, pg, node):
    """mta.tern() with its spool in PostgreSQL (pgcluster.tern_config's change)."""
    real = delivery_env.base_config
    spool = f'[spool]\nbackend = "postgres"\npostgres = "{pg.conninfo}"\n'
    delivery_env.base_config = lambda *a, **k: real(*a, **k).replace("[spool]\n", spool, 1)
    try:
        return mta.tern(retry='["1h"]', extra=f'[cluster]\nnode = "{node}"\n', name=node)
    finally:
        delivery_env.base_config = real


def test_trail_on_the_postgresql_spool(mta, pg, tmp_path):
    greylisting_peer(mta)
    tern = pg_tern(mta, pg, "node-a")
    assert pg.sql("SELECT version FROM tern_schema") == "2"
    # A second node's configuration (never started) reads the same trail.
    other = TernServer(tmp_path / "node-b", tern_config(pg.conninfo, extra='[cluster]\nnode = "node-b"\n'))
    local_id, relay_id, full = scenario(mta, tern, other_config=other.config)
    assert pg.sql(f"SELECT count(*) FROM trail WHERE message = {relay_id}") == str(len(full))
    assert trail(tern, "nobody@nowhere.test").returncode == 1

    assert tern.stop() == 0  # stopped: read from the database
    assert events(tern, relay_id) == full
    assert events(tern, relay_id, config=other.config) == full

    # A database of schema version 1 is migrated to 2 at start, under the lock.
    pg.sql("DROP TABLE trail; DROP TABLE pickups; UPDATE tern_schema SET version = 1; "
           "CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL)")
    set_retention(tern, "1s")
    tern.start()
    assert pg.sql("SELECT version FROM tern_schema") == "2"
    assert pg.sql("SELECT to_regclass('events') IS NULL") == "t"
    waiting = send(tern, "kate@example.test", ["bob@fabrikam.test"], body("<third@contoso.test>", "x"))
    wait_until(lambda: ("DEFER", "bob@fabrikam.test") in events(tern, waiting), what="a DEFER")
    # An event older than the retention of a message no longer queued goes;
    # the queued message keeps its trail, however old.
    pg.sql("INSERT INTO trail (message, time_ms, event, message_id, sender, recipient, remote_host, reply, "
           "message_key, sender_key, recipient_key) VALUES (77, 1000, 'DELIVER', '<old@x>', 'a@x', 'b@x', '', "
           "'250 ok', 'old@x', 'a@x', 'b@x')")
    assert events(tern, "77") == [("DELIVER", "b@x")]
    wait_until(lambda: pg.sql("SELECT count(*) FROM trail WHERE message = 77") == "0", what="the old trail expired")
    assert ("RECEIVE", "bob@fabrikam.test") in events(tern, waiting)
    assert tern.stop() == 0
