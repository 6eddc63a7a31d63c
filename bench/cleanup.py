"""Undo everything the benchmark started, whatever way it ends.

Every process, cgroup and temp folder is registered in CLEANUP when it is made
and unregistered when it is taken down normally; what is left runs in reverse
order on normal exit, on exceptions, on SIGINT/SIGTERM/SIGHUP and at exit.
Also the two things every bench module needs: log() for progress on stderr and
BenchError for a run that cannot go on.
"""

from __future__ import annotations

import atexit
import signal
import sys
import threading


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


class Cleanup:
    def __init__(self) -> None:
        self._items: list[tuple[int, str, object]] = []
        self._next = 0
        self._lock = threading.Lock()

    def push(self, what: str, fn) -> int:
        with self._lock:
            self._next += 1
            self._items.append((self._next, what, fn))
            return self._next

    def pop(self, token: int) -> None:
        with self._lock:
            self._items = [i for i in self._items if i[0] != token]

    def run_all(self) -> None:
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            while True:
                with self._lock:
                    if not self._items:
                        break
                    _, what, fn = self._items.pop()
                try:
                    fn()
                except Exception as e:  # keep cleaning up
                    log(f"bench: cleanup of {what} failed: {e}")
        finally:
            for s, h in old.items():
                signal.signal(s, h)


CLEANUP = Cleanup()
atexit.register(CLEANUP.run_all)


def _on_signal(signum, _frame):
    log(f"bench: signal {signum}; stopping everything it started")
    raise SystemExit(128 + signum)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP end the run through SystemExit, so the cleanup runs
    (SIGINT already does, as KeyboardInterrupt)."""
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
