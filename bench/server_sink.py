"""smtp-sink, Postfix's non-queuing test server, in two roles.

As a server under test (accept benchmark): `smtp-sink -u nobody 127.0.0.1:<port> 1024`,
receive and 250 with no queue and no disk, the upper bound of the set-up.
As the destination of the relay benchmark (counting=True): the same with -c, whose
running counters ("sess=S quit=Q mesg=M", CR-separated, one update per session end,
QUIT and ".") are read as they come, so expect(n)/wait() tell when the n-th message
arrived, timed when the counter was read.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from accounting import Accounting
from cleanup import CLEANUP, BenchError
from servers import HOST, SMTP_SINK, Server, free_port, wait_banner


class SinkServer(Server):
    kind = "sink"
    label = "smtp-sink"

    def __init__(self, top: Path, use_cgroups: bool, counting: bool = False, label: str = "smtp-sink") -> None:
        self.label = label
        self.counting = counting
        self.dir = Path(tempfile.mkdtemp(prefix="sink-", dir=top))
        self.acct = Accounting(label, use_cgroups)
        self.acct.exe_prefixes = (SMTP_SINK,)
        self.proc: subprocess.Popen | None = None
        self._token = None
        # Counting mode: the latest counters, and when the awaited count was reached.
        self.messages = 0
        self.sessions = 0
        self.output: list[str] = []          # anything that is not a counter line
        self._cond = threading.Condition()
        self._target: int | None = None
        self._reached: float | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        last = ""
        for _attempt in range(3):
            self.port = free_port()
            cmd = [SMTP_SINK]
            if self.counting:
                cmd.append("-c")
            if os.geteuid() == 0:
                cmd += ["-u", "nobody"]
            cmd += [f"{HOST}:{self.port}", "1024"]
            out = subprocess.PIPE if self.counting else open(self.dir / "out.log", "wb")
            self.proc = subprocess.Popen(cmd, cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         preexec_fn=self.acct.join_current_process, start_new_session=True)
            self._token = CLEANUP.push(f"smtp-sink pid {self.proc.pid}", self._kill)
            self.acct.root_pid = self.proc.pid
            if self.counting:
                self._reader = threading.Thread(target=self._read_counters, args=(self.proc.stdout.fileno(),),
                                                name=f"counter-{self.label}", daemon=True)
                self._reader.start()
            try:
                wait_banner(self.port, 10, self.proc)
                return
            except BenchError as e:
                self._kill()
                if self._reader:
                    self._reader.join(timeout=5)
                last = str(e) + " " + self._output_text()
                CLEANUP.pop(self._token)
                self._token = None
        raise BenchError("smtp-sink did not start: " + last)

    def _output_text(self) -> str:
        if self.counting:
            return " | ".join(self.output[-10:])
        return (self.dir / "out.log").read_text(errors="replace")

    def _read_counters(self, fd: int) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            now = time.monotonic()
            buf += chunk
            *pieces, buf = buf.replace(b"\n", b"\r").split(b"\r")
            latest = None
            for piece in pieces:
                if piece.startswith(b"sess="):
                    latest = piece
                elif piece.strip() and len(self.output) < 200:
                    self.output.append(piece.decode("utf-8", "replace"))
            if latest is None:
                continue
            try:
                fields = dict(f.split(b"=", 1) for f in latest.split())
                mesg, sess = int(fields[b"mesg"]), int(fields[b"sess"])
            except (ValueError, KeyError):
                continue
            with self._cond:
                self.messages, self.sessions = mesg, sess
                if self._target is not None and self._reached is None and mesg >= self._target:
                    self._reached = now
                self._cond.notify_all()

    def expect(self, n: int) -> None:
        """From now on, watch for the counter reaching n messages."""
        with self._cond:
            self._target = n
            self._reached = time.monotonic() if self.messages >= n else None

    def wait(self, timeout: float) -> float | None:
        """Monotonic time at which the expected count was read; None on timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._reached is not None or
                                (self.proc is not None and self.proc.poll() is not None), timeout)
            return self._reached

    def _kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def stop(self) -> dict:
        self._kill()
        if self._reader:
            self._reader.join(timeout=5)
        if self._token:
            CLEANUP.pop(self._token)
        out = {"leftover_processes": len(self.acct.kill_remaining())}
        self.acct.close()
        return out

    def notes(self) -> list[str]:
        return self.output[:30]
