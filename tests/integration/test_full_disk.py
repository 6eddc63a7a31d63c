"""Issue 9, SPEC §4: a full disk refuses new mail and repeats nothing. Each
test puts one of tern's folders (the spool, the Maildirs, the logs) on a small
tmpfs of its own and fills it with a ballast file: new mail is answered
452 4.3.1, queued mail is deferred with a 4xx and delivered exactly once, and
tern recovers by itself (no restart) once the ballast is removed."""
import os
import pwd
import re
import shutil
import subprocess
import threading

import pytest

from delivery_env import fill, tracking, wait_until
import ternlib
from ternlib import Client

INSUFFICIENT = "452 4.3.1 Insufficient system storage"


@pytest.fixture
def tmpfs():
    """tmpfs(folder, size) mounts a tmpfs of that size on folder (tests run as
    root); every mount is undone at teardown, also when the test failed."""
    mounted = []

    def mount(folder, size="16m"):
        folder.mkdir(parents=True, exist_ok=True)
        owner = ""
        if os.geteuid() == 0:  # tern serve runs as its user, to whom the folder belongs
            pw = pwd.getpwnam(ternlib.TERN_USER)
            owner = f",uid={pw.pw_uid},gid={pw.pw_gid}"
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700{owner}", "tmpfs", str(folder)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"cannot mount a tmpfs on {folder} (these tests need root): {r.stderr}"
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def send(server, sender, recipient, subject, rcpt_param=""):
    """One message; returns the reply to the data (or the first refusal)."""
    with Client(server.port, timeout=30) as c:
        assert c.reply().startswith("220 ")
        assert c.cmd("EHLO client.test").startswith("250")
        r = c.cmd(f"MAIL FROM:<{sender}>")
        if not r.startswith("250"):
            return r
        r = c.cmd(f"RCPT TO:<{recipient}>{rcpt_param}")
        if not r.startswith("250"):
            return r
        r = c.cmd("DATA")
        if not r.startswith("354"):
            return r
        return c.cmd(f"Subject: {subject}\r\n\r\nbody of {subject}\r\n.")


def files(server, user):
    out = []
    for sub in ("new", "cur"):
        folder = server.folder / "mail" / user / sub
        if folder.is_dir():
            out += sorted(p for p in folder.iterdir())
    return out


def subjects(server, user):
    return sorted(p.read_bytes().split(b"Subject: ", 1)[1].split(b"\n", 1)[0].decode()
                  for p in files(server, user) if b"Subject: " in p.read_bytes())


def test_full_spool_refuses_new_mail_and_delivers_queued_mail_once(tmpfs, mta):
    folder = mta.tmp / "full-spool"
    # Smaller than the WAL RocksDB would preallocate (70 MB): without that
    # reserve, the first write after the ballast meets ENOSPC.
    spool = tmpfs(folder / "spool", "24m")
    # No attempt of its own while the ballast goes in: `retry` starts them.
    tern = mta.tern(name="full-spool", retry='["1h"]')
    blocker = folder / "mail" / "postmaster"
    shutil.rmtree(blocker)  # made by tern at start
    blocker.write_text("a file where the Maildir should be: deliveries wait")
    for i in range(5):
        r = send(tern, "kate@example.test", "postmaster@example.test", f"queued {i}", " NOTIFY=SUCCESS")
        assert r.startswith("250 2.6.0 "), r
    wait_until(lambda: all(r["status"] == "deferred" for q in tern.queue_json() for r in q["recipients"]),
               what="five deferred messages")
    ballast = fill(spool)
    assert send(tern, "chris@contoso.com", "kate@example.test", "refused") == INSUFFICIENT
    # Delivered to the Maildir while the spool cannot record it: the attempt's
    # status update and the success notices fail with ENOSPC.
    blocker.unlink()
    assert tern.queue("retry", "--all").returncode == 0
    wait_until(lambda: len(files(tern, "postmaster")) >= 5, timeout=30, what="five deliveries")
    assert send(tern, "chris@contoso.com", "kate@example.test", "refused") == INSUFFICIENT
    ballast.unlink()
    # No restart: the spool resumes by itself, the outcomes and notices are written.
    # (The attempts whose outcome could not be written are tried again, after
    # up to a minute: the Maildir file names make that repeat find the copies.)
    wait_until(lambda: tern.queue_json() == [] and len(files(tern, "kate")) >= 5, timeout=120,
               what="an empty queue and five success notices")
    assert subjects(tern, "postmaster") == [f"queued {i}" for i in range(5)]  # each exactly once
    notices = files(tern, "kate")
    assert len(notices) == 5, [p.name for p in notices]
    assert all(b"Action: delivered" in p.read_bytes() for p in notices)
    assert send(tern, "chris@contoso.com", "kate@example.test", "after").startswith("250 2.6.0 ")
    wait_until(lambda: "after" in subjects(tern, "kate"), what="new mail delivered after recovery")
    assert tern.stop() == 0
    stderr = "".join(tern.stderr_lines)  # the spool met ENOSPC, and resumed by itself
    assert "spool: write failed" in stderr and "No space left on device" in stderr, stderr
    assert "spool: writes resumed after an error" in stderr, stderr


def test_full_maildir_defers_then_delivers_once(tmpfs, mta):
    folder = mta.tmp / "full-maildir"
    mail = tmpfs(folder / "mail", "4m")
    tern = mta.tern(name="full-maildir")
    ballast = fill(mail)
    assert send(tern, "chris@contoso.com", "kate@example.test", "waits").startswith("250 2.6.0 ")
    wait_until(lambda: any(r["status"] == "deferred" and "452 4.2.2 Mailbox full" in r.get("last_reply", "")
                           for q in tern.queue_json() for r in q["recipients"]),
               what="a 452 4.2.2 deferral")
    assert files(tern, "kate") == []
    assert not list((mail / "kate" / "tmp").iterdir())  # the partial file was removed
    ballast.unlink()
    wait_until(lambda: tern.queue_json() == [], timeout=30, what="the deferred message delivered")
    assert subjects(tern, "kate") == ["waits"]
    assert tern.stop() == 0


def test_full_log_disk_never_stops_mail(tmpfs, mta):
    folder = mta.tmp / "full-log"
    logs = tmpfs(folder / "log", "2m")
    tern = mta.tern(name="full-log")
    seen = []  # tern's stderr from here on, read as it comes
    reader = threading.Thread(target=lambda: seen.extend(iter(tern.proc.stderr.readline, "")), daemon=True)
    reader.start()
    ballast = fill(logs)
    for i in range(20):
        assert send(tern, "chris@contoso.com", "kate@example.test", f"during {i}").startswith("250 2.6.0 ")
    wait_until(lambda: len(files(tern, "kate")) == 20, what="20 deliveries while the logs are full")
    wait_until(lambda: any("tracking log cannot be written" in line for line in seen),
               what="one error on stderr for the full log")
    ballast.unlink()
    r = send(tern, "chris@contoso.com", "kate@example.test", "after")
    assert r.startswith("250 2.6.0 "), r
    after_id = re.search(r"InternalId=(\d+)", r).group(1)
    # Lines resume once there is room: the last message's delivery is logged.
    wait_until(lambda: any(row[1] == "DELIVER" and row[2] == after_id for row in tracking(tern)),
               what="the tracking log written again")
    wait_until(lambda: any("tracking log written again" in line for line in seen),
               what="stderr telling the log is written again")
    assert tern.stop() == 0
    reader.join(timeout=10)
    assert sum("tracking log cannot be written" in line for line in seen) == 1, seen
    assert sorted(subjects(tern, "kate")) == sorted([f"during {i}" for i in range(20)] + ["after"])
