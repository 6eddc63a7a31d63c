"""The queue survives restarts and obeys the administrator (SPEC §1, §4):
deferred mail is still there, with its state, after a restart; `tern queue
retry|delete|bounce` act on a running server (through its control socket)
and on a stopped one (on the spool directly)."""
import subprocess

from delivery_env import dsn_summary, maildir_files, queue_state, tracking, wait_for_maildir, wait_until
from ternlib import TERN

FABRIKAM = "fabrikam.test"


def deferring_peer(mta, sessions=1000):
    a = mta.address()
    peer = mta.peer(a, defer={"RCPT": sessions})
    mta.dns(mx=[(FABRIKAM, "mx.fabrikam.test", 10)], hosts=[("mx.fabrikam.test", a)])
    return peer


def wait_deferred(tern, address):
    return wait_until(lambda: queue_state(tern).get(address, ("",))[0] == "deferred", what=f"{address} deferred")


def test_restart_with_deferred_mail_then_retry(mta):
    peer = deferring_peer(mta, sessions=1)  # the first session defers, later ones accept
    tern = mta.tern(retry='["1h"]')
    [q] = mta.send(tern, "kate@example.test", ["bob@fabrikam.test"])
    wait_deferred(tern, "bob@fabrikam.test")
    assert tern.stop() == 0
    # stopped: the queue still holds it, deferred, with the reason and the next attempt in an hour
    [after] = tern.queue_json()
    assert after["id"] == q["id"]
    r = after["recipients"][0]
    assert r["status"] == "deferred" and r["attempts"] == 1 and r["last_reply"].startswith("451 4.3.0")
    assert after["next_attempt"] > after["arrival"]
    tern.start()
    assert "1 queued" in "".join(tern.stderr_lines)
    out = tern.queue("retry", str(q["id"]))
    assert out.returncode == 0 and "will be tried now" in out.stdout, out.stdout + out.stderr
    [msg] = peer.wait_for_messages(1)
    assert msg.recipients == ["bob@fabrikam.test"]
    wait_until(lambda: tern.queue_json() == [], what="an empty queue")


def test_bounce_and_delete_on_a_running_server(mta):
    deferring_peer(mta)
    tern = mta.tern(retry='["1h"]')
    [first] = mta.send(tern, "kate@example.test", ["one@fabrikam.test"], body="Subject: first\r\n\r\nx\r\n")
    [_, second] = mta.send(tern, "kate@example.test", ["two@fabrikam.test"], body="Subject: second\r\n\r\nx\r\n")
    wait_deferred(tern, "one@fabrikam.test")
    wait_deferred(tern, "two@fabrikam.test")
    out = tern.queue("bounce", str(first["id"]))
    assert out.returncode == 0 and "returned to kate@example.test" in out.stdout, out.stdout + out.stderr
    [notice] = wait_for_maildir(tern, "kate")
    d = dsn_summary(notice)
    assert d["recipients"][0]["action"] == "failed" and d["original_subject"] == "first"
    assert "Bounced by the administrator" in d["recipients"][0]["diagnostic-code"]
    out = tern.queue("delete", str(second["id"]))
    assert out.returncode == 0 and "deleted" in out.stdout
    wait_until(lambda: tern.queue_json() == [], what="an empty queue")
    assert len(maildir_files(tern, "kate")) == 1  # no notice for a deleted message
    missing = tern.queue("delete", "12345")
    assert missing.returncode == 1 and missing.stderr.startswith("tern: no message with InternalId 12345")
    assert tern.stop() == 0
    events = [(r[1], r[2]) for r in tracking(tern)]
    assert ("FAIL", str(first["id"])) in events and ("DSN", str(first["id"])) in events


def test_queue_actions_on_a_stopped_server(mta):
    deferring_peer(mta)
    tern = mta.tern(retry='["1h"]')
    [q] = mta.send(tern, "kate@example.test", ["one@fabrikam.test"])
    wait_deferred(tern, "one@fabrikam.test")
    assert tern.stop() == 0
    out = tern.queue("retry", "--all")
    assert out.returncode == 0 and "no server running" in out.stdout, out.stdout + out.stderr
    out = tern.queue("bounce", str(q["id"]))
    assert out.returncode == 0, out.stderr
    [dsn] = tern.queue_json()  # the notice waits for the server
    assert dsn["sender"] == "" and dsn["recipients"][0]["address"] == "kate@example.test"
    tern.start()
    wait_for_maildir(tern, "kate")
    wait_until(lambda: tern.queue_json() == [], what="an empty queue")


def test_queue_command_errors():
    out = subprocess.run([TERN, "queue", "retry"], capture_output=True, text=True)
    assert out.returncode == 2 and "InternalId or --all" in out.stderr
    out = subprocess.run([TERN, "queue", "delete", "--config", "/nonexistent.toml", "1"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("tern: bad configuration: /nonexistent.toml")
