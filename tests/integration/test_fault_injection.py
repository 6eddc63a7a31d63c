"""Issue 9, SPEC §4: EIO where no real fault can be made. tern runs under
libfiu's POSIX preload (fiu-run -x) and fiu-ctrl makes fdatasync(2) (the
spool's WAL sync) or fsync(2) (the Maildir file) fail with EIO: the client
gets a 4xx, nothing acknowledged is lost, nothing is delivered twice, and tern
recovers by itself once the fault is disabled."""
import os
import pwd
import re
import shutil
import subprocess

import pytest

import ternlib
from delivery_env import wait_until
from ternlib import Client

EIO = 5
LOCAL_ERROR = "451 4.3.0 Local error in processing, try again later"


def start_under_fiu(server):
    """Starts server under fiu-run; returns a function fault(point, on)."""
    assert shutil.which("fiu-run") and shutil.which("fiu-ctrl"), "libfiu's tools missing (scripts/install-deps.sh)"
    # libfiu's control thread opens its FIFOs again for every command, and
    # tern's switch to its user (when started as root) would leave them out
    # of reach: as root, tern starts as its user right away, in folders of its
    # own, as an administrator's service manager would start it.
    fiu_dir = server.folder / "fiu"
    as_user = ""
    for sub in ("fiu", "spool", "log", "mail"):
        (server.folder / sub).mkdir(exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(ternlib.TERN_USER)
            os.chown(server.folder / sub, pw.pw_uid, pw.pw_gid)
            as_user = f"setpriv --reuid={pw.pw_uid} --regid={pw.pw_gid} --clear-groups "
    ctrl = fiu_dir / "ctl"
    # An AddressSanitizer build crashes when libfiu's preload comes before its
    # runtime (libfiu's wrappers run before ASan is initialised): the runtime
    # goes first, and its interceptors call on to libfiu's.
    ldd = subprocess.run(["ldd", ternlib.TERN], capture_output=True, text=True, timeout=30).stdout
    asan = re.search(r"libasan\.so\S* => (\S+)", ldd)
    first = asan.group(1) if asan else ""
    binary = ternlib.TERN
    if as_user:  # the build folder may be out of the user's reach (a clone in mktemp -d, 0700)
        binary = str(server.folder / "tern")
        shutil.copy(ternlib.TERN, binary)
        os.chmod(binary, 0o755)
    wrapper = server.folder / "tern-under-fiu"
    wrapper.write_text("#!/bin/sh\n"
                       f"exec {as_user}fiu-run -x -f {ctrl} /bin/sh -c "
                       f"'LD_PRELOAD=\"{first} $LD_PRELOAD\" exec \"$0\" \"$@\"' {binary} \"$@\"\n")
    wrapper.chmod(0o755)
    saved = ternlib.TERN
    ternlib.TERN = str(wrapper)
    try:
        server.start(env={"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"})
    finally:
        ternlib.TERN = saved
    pid = server.proc.pid

    def fault(point, on):
        command = f"enable name={point},failinfo={EIO}" if on else f"disable name={point}"
        r = subprocess.run(["fiu-ctrl", "-f", str(ctrl), "-c", command, str(pid)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr

    return fault


def send(server, subject):
    with Client(server.port, timeout=30) as c:
        c.start_data()
        return c.cmd(f"Subject: {subject}\r\n\r\nbody of {subject}\r\n.")


def delivered_subjects(server):
    out = []
    for sub in ("new", "cur"):
        folder = server.folder / "mail" / "kate" / sub
        if folder.is_dir():
            for p in folder.iterdir():
                m = re.search(rb"^Subject: (.*)$", p.read_bytes(), re.M)
                out.append(m.group(1).decode() if m else "?")
    return sorted(out)


def test_eio_on_the_spool_sync_is_a_4xx_and_recovers(make_server):
    server = make_server(start=False, delivery="", extra='[queue]\nretry = ["1s"]\n')
    fault = start_under_fiu(server)
    assert send(server, "before").startswith("250 2.6.0 ")
    wait_until(lambda: delivered_subjects(server) == ["before"], what="the first delivery")
    fault("posix/io/sync/fdatasync", True)
    refused = [send(server, f"refused {i}") for i in range(3)]
    fault("posix/io/sync/fdatasync", False)
    assert refused == [LOCAL_ERROR] * 3, refused
    # No restart: the next write resumes the spool.
    after = wait_until(lambda: (lambda r: r if r.startswith("250") else None)(send(server, "after")),
                       timeout=30, what="a 250 after the fault is gone")
    assert after.startswith("250 2.6.0 ")
    wait_until(lambda: server.queue_json() == [] and "after" in delivered_subjects(server), what="delivery after recovery")
    assert server.stop() == 0
    got = delivered_subjects(server)
    assert got.count("before") == 1 and got.count("after") >= 1 and not any(s.startswith("refused") for s in got), got


def test_eio_on_the_maildir_fsync_defers_then_delivers_once(make_server):
    server = make_server(start=False, delivery="", extra='[queue]\nretry = ["1s"]\n')
    fault = start_under_fiu(server)
    # RocksDB syncs its WAL with fdatasync, and the WAL's folder with fsync
    # once per new WAL: the first message makes that happen before the fault.
    assert send(server, "first").startswith("250 2.6.0 ")
    wait_until(lambda: server.queue_json() == [], what="the first delivery")
    fault("posix/io/sync/fsync", True)
    assert send(server, "waits").startswith("250 2.6.0 ")
    wait_until(lambda: any("Input/output error" in r.get("last_reply", "") and r["status"] == "deferred"
                           for q in server.queue_json() for r in q["recipients"]),
               what="a deferral naming the I/O error")
    assert delivered_subjects(server) == ["first"]
    fault("posix/io/sync/fsync", False)
    wait_until(lambda: server.queue_json() == [], timeout=30, what="delivery once the fault is gone")
    assert server.stop() == 0
    assert delivered_subjects(server) == ["first", "waits"]
