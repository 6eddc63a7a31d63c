"""What every server under test has in common, and where the tools are.

A Server is started fresh in its own folder under the run's temp folder, listens
on 127.0.0.1:<port>, is accounted by its own Accounting (accounting.py) and is
stopped and checked after the run. The implementations: server_tern.py,
server_postfix.py, server_sink.py; make_server() picks one. wait_drained() and the check_drained_*()
helpers check that a delivering server's queue empties.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

from accounting import Accounting
from cleanup import BenchError
from measure import Phases

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
POSTQUEUE = "/usr/sbin/postqueue"

HOST = "127.0.0.1"


class Server:
    kind = "?"
    label = "?"
    port = 0
    acct: Accounting

    def start(self) -> None: ...

    def stop(self) -> dict: ...

    def queued(self) -> dict | None:
        """{"count": messages in the queue, ...}; None for a server without one."""
        return None

    def notes(self) -> list[str]:
        """Warnings and errors the server logged (for the report)."""
        return []

    def begin_window(self) -> None:
        """Called just before the measured window (tern-pg reads PostgreSQL's counters)."""

    def postqueue(self) -> list[dict] | None:
        """The messages `postqueue -j` lists (Postfix); None for other servers."""
        return None


def make_server(kind: str, args, top, tern_binary, **options) -> Server:
    """A fresh server of this kind (tern, tern+plog, tern-pg, postfix, sink) in a folder under
    `top`; options (relay_to=<sink port>, local=True) configure tern and Postfix."""
    # Imported here: the server modules import this one.
    from server_postfix import PostfixServer
    from server_sink import SinkServer
    from server_tern import TernPgServer, TernServer
    if kind == "tern-pg":
        return TernPgServer(tern_binary, top, not args.no_cgroups, kind, **options)
    if kind in ("tern", "tern+plog"):
        return TernServer(tern_binary, top, kind == "tern+plog", not args.no_cgroups, kind, **options)
    if kind == "postfix":
        return PostfixServer(top, not args.no_cgroups, **options)
    if kind == "sink":
        return SinkServer(top, not args.no_cgroups)
    raise ValueError(kind)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_banner(port: int, timeout: float, proc: subprocess.Popen | None = None) -> str:
    """Connects until the server answers with its 220 banner (bounded in time)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode} before answering on port {port}")
        try:
            with socket.create_connection((HOST, port), timeout=max(0.1, deadline - time.monotonic())) as s:
                f = s.makefile("rb")
                line = f.readline(1024).decode("ascii", "replace").strip()
                if line.startswith("220"):
                    s.sendall(b"QUIT\r\n")
                    f.readline(1024)
                    return line
                last = line
        except OSError as e:
            last = str(e)
        time.sleep(0.02)
    raise BenchError(f"no SMTP banner on {HOST}:{port} within {timeout:.0f}s (last: {last})")


def wait_drained(srv: Server, timeout: float) -> dict:
    """Polls the server's queue until it is empty (bounded); returns the last look."""
    deadline = time.monotonic() + timeout
    t0 = time.monotonic()
    while True:
        q = srv.queued() or {"count": 0}
        if q["count"] == 0 or time.monotonic() >= deadline:
            q["waited_s"] = round(time.monotonic() - t0, 3)
            return q
        time.sleep(0.1)


def check_drained_after_warmup(srv: Server, res: dict) -> None:
    """A delivering server's queue must empty (30 s at most) after the warm-up."""
    q0 = wait_drained(srv, 30)
    res["queued_before"] = q0
    if q0["count"]:
        res["errors"].append(f"after warm-up {q0['count']} messages still queued")


def check_drained_after_run(srv: Server, res: dict) -> None:
    """A delivering server's queue must empty (30 s at most) after the run; Postfix's
    `postqueue -j` must list nothing too."""
    q1 = wait_drained(srv, 30)
    res["queued_after"] = q1
    if q1["count"]:
        res["errors"].append(f"{q1['count']} messages still queued after the run: {q1}")
    left = srv.postqueue()
    if left is not None:
        res["postqueue_after"] = len(left)
        if left:
            res["errors"].append(f"postqueue -j lists {len(left)} messages after the run")


def finish_server(srv: Server | None, kind: str, res: dict, keep: bool, phase: Phases) -> None:
    """Stops the server, records how it stopped and what it logged, removes its folder
    (unless keep); nothing for a server that was never made (srv None)."""
    if srv is None:
        return
    try:
        res["stop"] = srv.stop()
    except Exception as e:  # noqa: BLE001 - report and continue
        res["errors"].append(f"stop failed: {e}")
    phase("stop")
    notes = srv.notes()
    if notes:
        res["server_messages"] = notes[:30]
    if kind.startswith("tern"):
        st = res.get("stop", {})
        if st.get("exit_code") not in (0, None):
            res["errors"].append(f"tern exited with {st.get('exit_code')} on SIGTERM")
        if "postgres" in st:
            res["postgres"] = st["postgres"]
        if st.get("postgres_error"):
            res["errors"].append(f"PostgreSQL statistics: {st['postgres_error']}")
        pst = st.get("postgres_stop") or {}
        if pst.get("stop_error"):
            res["errors"].append(pst["stop_error"])
        if "vm" in st:
            res["tern_vmhwm_mb"] = st["vm"].get("VmHWM", 0) / 1024
            res["tern_threads"] = st["vm"].get("Threads")
    if not keep:
        shutil.rmtree(srv.dir, ignore_errors=True)
    phase("remove")
