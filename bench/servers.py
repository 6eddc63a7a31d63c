"""What every server under test has in common, and where the tools are.

A Server is started fresh in its own folder under the run's temp folder, listens
on 127.0.0.1:<port>, is accounted by its own Accounting (accounting.py) and is
stopped and checked after the run. The implementations: server_tern.py,
server_postfix.py, server_sink.py.
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


def finish_server(srv: Server, kind: str, res: dict, keep: bool, phase: Phases) -> None:
    """Stops the server, records how it stopped and what it logged, removes its folder."""
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
        if "vm" in st:
            res["tern_vmhwm_mb"] = st["vm"].get("VmHWM", 0) / 1024
            res["tern_threads"] = st["vm"].get("Threads")
    if not keep:
        shutil.rmtree(srv.dir, ignore_errors=True)
    phase("remove")
