"""The PostgreSQL spool ([spool] backend = "postgres", SPEC §6) against a
private PostgreSQL 15 (pgcluster.py): mail is accepted and delivered through
it, `tern queue` reads it from the database, a large message is stored in
chunks and comes out byte-identical, and a database that is unreachable,
too new, or stopped in the middle of a session is refused cleanly: a one-line
error and a non-zero exit at start, a 4xx (nothing acknowledged) during a
session, mail accepted again once it is back."""
import os
import pathlib
import re
import smtplib
import subprocess
import time

from delivery_env import wait_for_maildir, wait_until
from pgcluster import multi_host_conninfo, tern_config
from ternlib import QUEUED, TERN, Client, TernServer, free_port


def pg_config(conninfo, delivery=None, extra=""):
    return tern_config(conninfo, extra=extra, delivery=delivery)


def start_tern(tmp_path, conninfo, delivery=None, name="tern"):
    return TernServer(tmp_path / name, pg_config(conninfo, delivery)).start()


def send(port, body, recipients=("kate@example.test",)):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.sendmail("chris@contoso.com", list(recipients), body)


def test_accepts_and_delivers_to_a_maildir(pg, tmp_path):
    tern = start_tern(tmp_path, pg.conninfo, delivery="")
    send(tern.port, b"Subject: through postgres\r\n\r\nhello from the shared spool\r\n")
    [path] = wait_for_maildir(tern, "kate")
    data = path.read_bytes()
    assert b"Subject: through postgres" in data and b"hello from the shared spool" in data
    # Delivered mail leaves the queue: no message, chunk or delivery row stays.
    wait_until(lambda: pg.sql("SELECT count(*) FROM messages") == "0", what="an empty queue")
    assert pg.sql("SELECT count(*) FROM chunks") == "0"
    assert pg.sql("SELECT count(*) FROM deliveries") == "0"
    assert tern.stop() == 0
    assert pg.sql("SELECT version FROM tern_schema") == "2"


def test_queue_list_shows_queued_mail_from_the_database(pg, tmp_path):
    tern = start_tern(tmp_path, pg.conninfo)  # delivery disabled: the mail stays queued
    send(tern.port, b"Subject: one\r\n\r\nx\r\n", ["kate@example.test", "postmaster@example.test"])
    send(tern.port, b"Subject: two\r\n\r\ny\r\n")
    queue = tern.queue_json()
    assert len(queue) == 2
    first = next(m for m in queue if len(m["recipients"]) == 2)
    assert [r["address"] for r in first["recipients"]] == ["kate@example.test", "postmaster@example.test"]
    assert all(r["status"] == "queued" for r in first["recipients"])
    # SQL users see the queue per recipient.
    rows = pg.sql(f"SELECT address, state FROM deliveries WHERE message_id = {first['id']} ORDER BY idx")
    assert rows.splitlines() == ["kate@example.test|queued", "postmaster@example.test|queued"]
    assert pg.sql(f"SELECT local FROM messages WHERE id = {first['id']}") == "t"
    shown = tern.queue("show", str(first["id"]))
    assert shown.returncode == 0 and "Subject: one" in shown.stdout, shown.stderr
    # The queue stays after a restart; ids are unique across starts.
    assert tern.stop() == 0
    tern.start()
    send(tern.port, b"Subject: three\r\n\r\nz\r\n")
    ids = [m["id"] for m in tern.queue_json()]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert tern.stop() == 0
    # tern queue works with no server running: it reads the database.
    assert len(tern.queue_json()) == 3


def test_a_large_message_is_chunked_and_delivered_byte_identical(pg, tmp_path):
    tern = start_tern(tmp_path, pg.conninfo)
    lines = [f"line {i:06d} " + "abcdefghij" * 7 for i in range(16000)]  # about 1.4 MB
    body = ("Subject: big\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode()
    with Client(tern.port) as c:
        c.start_data()
        c.send(body + b".\r\n")
        reply = c.reply()
    m = QUEUED.match(reply)
    assert m, reply
    qid = m.group(1)
    # Stored in rows of at most 256 KB.
    assert int(pg.sql(f"SELECT count(*) FROM chunks WHERE message_id = {qid}")) >= 6
    assert pg.sql(f"SELECT max(length(data)) FROM chunks WHERE message_id = {qid}") == str(256 * 1024)
    shown = tern.queue("show", qid, "--content")
    assert shown.returncode == 0 and lines[-1] in shown.stdout
    assert tern.stop() == 0
    tern.config.write_text(pg_config(pg.conninfo, delivery=""))
    tern.start()
    [path] = wait_for_maildir(tern, "kate")
    delivered = path.read_bytes()
    head, _, content = delivered.partition(b"\n\n") if b"\r\n\r\n" not in delivered else delivered.partition(b"\r\n\r\n")
    expected = body.partition(b"\r\n\r\n")[2]
    if b"\r\n" not in content:
        expected = expected.replace(b"\r\n", b"\n")
    assert content == expected
    assert tern.stop() == 0


def test_unreachable_database_at_start_is_one_line_and_exits_non_zero(tmp_path):
    port = free_port()  # nothing listens there
    conninfo = f"host=127.0.0.1 port={port} dbname=tern user=tern password=s3cret connect_timeout=5"
    server = TernServer(tmp_path / "tern", pg_config(conninfo))
    started = time.monotonic()
    out = subprocess.run([TERN, "serve", "--config", str(server.config)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0
    assert time.monotonic() - started < 30
    errors = [line for line in out.stderr.splitlines() if line.startswith("tern: ")]
    assert len(errors) == 1, out.stderr
    assert f"port={port}" in errors[0] and "127.0.0.1" in errors[0], errors[0]
    assert "s3cret" not in out.stderr
    # tern queue says the same.
    q = subprocess.run([TERN, "queue", "list", "--config", str(server.config)], capture_output=True,
                       text=True, timeout=60)
    assert q.returncode != 0 and f"port={port}" in q.stderr and "s3cret" not in q.stderr


def test_a_schema_newer_than_tern_is_refused(pg, tmp_path):
    pg.sql("CREATE TABLE tern_schema (version integer NOT NULL); "
           "INSERT INTO tern_schema VALUES (99); ALTER TABLE tern_schema OWNER TO tern")
    server = TernServer(tmp_path / "tern", pg_config(pg.conninfo))
    out = subprocess.run([TERN, "serve", "--config", str(server.config)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0
    assert re.search(r"schema version 99, newer than this tern knows \(2\)", out.stderr), out.stderr
    # Nothing was created next to it.
    assert pg.sql("SELECT to_regclass('messages') IS NULL") == "t"


def test_database_stopped_in_a_session_gives_4xx_then_mail_is_accepted_again(pg, tmp_path):
    tern = start_tern(tmp_path, pg.conninfo)
    send(tern.port, b"Subject: before\r\n\r\nx\r\n")
    with Client(tern.port) as c:
        c.start_data()
        pg.stop()
        c.send(b"Subject: during\r\n\r\nlost\r\n.\r\n")
        reply = c.reply()
        assert reply.startswith("451 4.3.0"), reply
    # The queue tools say so in one line.
    listed = tern.queue("list")
    assert listed.returncode != 0 and len(listed.stderr.strip().splitlines()) == 1, listed.stderr
    assert f"port={pg.port}" in listed.stderr
    pg.start()
    # Nothing of it was stored: only the mail from before is there.
    assert pg.sql("SELECT count(*) FROM messages") == "1"
    assert pg.sql("SELECT count(*) FROM chunks c WHERE NOT EXISTS "
                  "(SELECT 1 FROM messages m WHERE m.id = c.message_id)") == "0"
    # Back: mail is accepted again (the spool reconnects by itself).
    send(tern.port, b"Subject: after\r\n\r\ny\r\n")
    assert pg.sql("SELECT count(*) FROM messages") == "2"
    subjects = sorted(
        tern.queue("show", str(m["id"])).stdout.split("Subject: ")[1].split()[0] for m in tern.queue_json())
    assert subjects == ["after", "before"]
    assert tern.stop() == 0


def test_the_shared_calls_against_a_real_database(pg):
    """claim, release, take, leases, LISTEN, batches of new mail and a failed
    batch (tests/unit/spool_postgres_test.cpp), run by the unit test binary
    built next to tern, on this database."""
    unit = pathlib.Path(TERN).parent / "unit_tests"
    assert unit.exists(), f"{unit} is not built (cmake --build build --target unit_tests)"
    out = subprocess.run([str(unit), "--gtest_filter=PostgresSpool.*"], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "TERN_TEST_POSTGRES": pg.conninfo})
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "[  PASSED  ] 7 tests." in out.stdout and "SKIPPED" not in out.stdout, out.stdout


def test_the_spool_follows_a_promoted_standby(pg, tmp_path):
    """A multi-host connection string: after the primary dies (kill -9) and its
    synchronous standby is promoted, what got a 250 is there, and mail is
    accepted again (the committer reconnects; libpq finds the new primary)."""
    standby = pg.standby()
    tern = start_tern(tmp_path, multi_host_conninfo(pg, standby))
    send(tern.port, b"Subject: before\r\n\r\nx\r\n")
    pg.kill9()
    standby.promote()
    deadline = time.monotonic() + 60
    while True:  # 4xx until the spool has found the new primary, never a 5xx
        try:
            send(tern.port, b"Subject: after\r\n\r\ny\r\n")
            break
        except smtplib.SMTPDataError as e:
            assert 400 <= e.smtp_code < 500, e
            assert time.monotonic() < deadline, "no 250 within 60 s of the promotion"
    subjects = [tern.queue("show", str(m["id"])).stdout.split("Subject: ")[1].split()[0]
                for m in tern.queue_json()]
    assert "before" in subjects and "after" in subjects, subjects
    assert standby.sql("SELECT count(*) FROM messages") == str(len(subjects))
    assert tern.stop() == 0
