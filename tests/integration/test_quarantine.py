"""Issue 9, SPEC §4: nothing is deleted that was not delivered or bounced. An
envelope record the spool cannot decode (damaged here with RocksDB's own
`ldb`, key = the InternalId as 8 octets big-endian) is quarantined: listed by
`tern queue list` (and --json) with the reason, kept with its content across
restarts, never delivered or removed by the server; `retry` explains that it
cannot be read and only `tern queue delete` removes it with its content."""
import json
import os
import subprocess

import ternlib

from delivery_env import wait_until
from ternlib import Client


def ldb(spool, *args):
    """RocksDB's ldb on the spool, as tern's user (files it makes stay tern's)."""
    u = ternlib.TERN_USER
    as_user = ["setpriv", f"--reuid={u}", f"--regid={u}", "--clear-groups"] if os.geteuid() == 0 else []
    return subprocess.run([*as_user, "ldb", f"--db={spool}", *args], capture_output=True, text=True, timeout=60,
                          cwd="/")


def key(internal_id):
    return "0x%016X" % internal_id


def queue_one(server, subject):
    with Client(server.port) as c:
        c.start_data()
        reply = c.cmd(f"Subject: {subject}\r\n\r\nbody\r\n.")
    assert reply.startswith("250 2.6.0 "), reply
    return int(reply.split("InternalId=")[1].split(",")[0])


def test_unreadable_envelope_is_quarantined_until_deleted(make_server):
    server = make_server()  # delivery off while the records are made
    damaged = queue_one(server, "damaged")
    empty = queue_one(server, "no recipients")
    assert server.stop() == 0
    spool = server.folder / "spool"
    assert ldb(spool, "--column_family=envelopes", "--key_hex", "put", key(damaged), "{not json").returncode == 0
    # A record that parses but names no recipient: once taken for "all done".
    no_rcpt = json.dumps({"v": 1, "id": empty, "f": "chris@contoso.com", "rc": []})
    assert ldb(spool, "--column_family=envelopes", "--key_hex", "put", key(empty), no_rcpt).returncode == 0

    listed = {q["id"]: q for q in server.queue_json()}
    assert set(listed) == {damaged, empty}
    for i in (damaged, empty):
        assert listed[i]["held"].startswith("the envelope record cannot be read: "), listed[i]
    assert "without recipients" in listed[empty]["held"]
    text = server.queue("list").stdout
    assert "HELD: the envelope record cannot be read" in text, text
    shown = server.queue("show", str(damaged))
    assert shown.returncode == 0 and "Held:         the envelope record cannot be read" in shown.stdout, shown
    assert "Subject: damaged" in shown.stdout  # the content is kept

    # A server that delivers leaves them alone, across restarts.
    server.config.write_text(server.config.read_text().replace("enabled = false", ""))
    server.start()
    survivor = queue_one(server, "deliverable")
    wait_until(lambda: {q["id"] for q in server.queue_json()} == {damaged, empty}, what="the good message delivered")
    retry = server.queue("retry", str(damaged))
    assert retry.returncode == 1 and "cannot be read" in retry.stderr and "tern queue delete" in retry.stderr, retry
    assert server.stop() == 0
    retry = server.queue("retry", str(empty))  # no server: the spool itself
    assert retry.returncode == 1 and "cannot be read" in retry.stderr, retry
    for i in (damaged, empty):  # the contents are still there
        got = ldb(spool, "--column_family=contents", "--key_hex", "get", key(i))
        assert got.returncode == 0 and got.stdout.strip(), (i, got.stderr)
    server.start()
    assert {q["id"] for q in server.queue_json()} == {damaged, empty}

    # Deleted by the administrator only: through the server, and without one.
    deleted = server.queue("delete", str(damaged))
    assert deleted.returncode == 0, deleted
    assert {q["id"] for q in server.queue_json()} == {empty}
    assert server.stop() == 0
    deleted = server.queue("delete", str(empty))
    assert deleted.returncode == 0, deleted
    assert server.queue_json() == []
    for family in ("envelopes", "contents"):
        for i in (damaged, empty):
            got = ldb(spool, f"--column_family={family}", "--key_hex", "get", key(i))
            assert got.returncode != 0 or not got.stdout.strip(), (family, i, got.stdout)
    assert survivor not in {q["id"] for q in server.queue_json()}
