"""CPU and memory of one server, all its processes counted.

A cgroup v1 child per server (cpuacct + memory), created under this process's own
cgroups; the server's first process joins it before it forks (join_current_process
as preexec_fn), so every child (Postfix master, smtpd, cleanup, qmgr, ...) is
counted. Falls back to /proc accounting of the server's process tree when cgroups
are not writable. A sampler thread records the peak anonymous memory.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from cleanup import CLEANUP
from measure import CLK_TCK, descendants, proc_cpu_ticks, proc_status


def _cgroup_v1_dir(controller: str) -> Path | None:
    own = None
    with open("/proc/self/cgroup") as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3 and controller in parts[1].split(","):
                own = parts[2]
    if own is None:
        return None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            try:
                sep = parts.index("-")
            except ValueError:
                continue
            if parts[sep + 1] != "cgroup" or controller not in parts[sep + 3].split(","):
                continue
            root, mountpoint = parts[3], parts[4]
            rel = own
            if root != "/" and own.startswith(root):
                rel = own[len(root):]
            return Path(mountpoint + rel.rstrip("/")) if rel != "/" else Path(mountpoint)
    return None


class Accounting:
    _seq = 0

    def __init__(self, label: str, use_cgroups: bool) -> None:
        Accounting._seq += 1
        self.label = label
        self.root_pid: int | None = None
        # /proc mode only: what a process of this server executes (guards against pid reuse).
        self.exe_prefixes: tuple[str, ...] = ()
        self.cg: dict[str, Path] = {}
        self._token = None
        if use_cgroups:
            name = f"tern-bench-{os.getpid()}-{Accounting._seq}-{label}"
            for ctl in ("cpuacct", "memory"):
                base = _cgroup_v1_dir(ctl)
                if base is None:
                    continue
                try:
                    d = base / name
                    d.mkdir()
                    self.cg[ctl] = d
                except OSError:
                    pass
        self._token = CLEANUP.push(f"accounting {label}", self.close)
        self._sampler: threading.Thread | None = None
        self._stop = threading.Event()
        self.max_anon = 0
        self.max_rss_sum = 0

    @property
    def mode(self) -> str:
        if "cpuacct" in self.cg and "memory" in self.cg:
            return "cgroup-v1"
        if self.cg:
            return "cgroup-v1 (" + ",".join(self.cg) + ") + /proc"
        return "/proc"

    def join_current_process(self) -> None:
        """preexec_fn: the new process (and all it forks) joins this server's cgroups."""
        pid = str(os.getpid())
        for d in self.cg.values():
            with open(d / "cgroup.procs", "w") as f:
                f.write(pid)

    def pids(self) -> list[int]:
        for ctl in ("memory", "cpuacct"):
            if ctl in self.cg:
                try:
                    return [int(x) for x in (self.cg[ctl] / "cgroup.procs").read_text().split()]
                except OSError:
                    pass
        if self.root_pid is not None:
            return [p for p in descendants(self.root_pid) if self._ours(p)]
        return []

    def _ours(self, pid: int) -> bool:
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return False
        return any(exe.startswith(x) for x in self.exe_prefixes)

    def cpu_ns(self) -> int:
        if "cpuacct" in self.cg:
            return int((self.cg["cpuacct"] / "cpuacct.usage").read_text())
        # Live process tree: own time + reaped children (cutime/cstime) of each.
        ticks = sum(proc_cpu_ticks(p) for p in self.pids())
        return ticks * 1_000_000_000 // CLK_TCK

    def user_sys_s(self) -> tuple[float, float] | None:
        """(user, system) CPU seconds from cpuacct.stat; None without the cgroup."""
        if "cpuacct" not in self.cg:
            return None
        try:
            st = dict(l.split() for l in (self.cg["cpuacct"] / "cpuacct.stat").read_text().splitlines())
            return int(st["user"]) / CLK_TCK, int(st["system"]) / CLK_TCK
        except (OSError, KeyError, ValueError):
            return None

    def memory_stat(self) -> dict[str, int]:
        if "memory" not in self.cg:
            return {}
        out = {}
        try:
            for line in (self.cg["memory"] / "memory.stat").read_text().splitlines():
                k, v = line.split()
                out[k] = int(v)
            out["usage_in_bytes"] = int((self.cg["memory"] / "memory.usage_in_bytes").read_text())
        except (OSError, ValueError):
            pass
        return out

    def rss_sum(self) -> int:
        return sum(proc_status(p).get("VmRSS", 0) for p in self.pids()) * 1024

    def reset_peak(self) -> None:
        if "memory" in self.cg:
            try:
                (self.cg["memory"] / "memory.max_usage_in_bytes").write_text("0")
            except OSError:
                pass
        self.max_anon = 0
        self.max_rss_sum = 0

    def peak_bytes(self) -> int | None:
        if "memory" in self.cg:
            return int((self.cg["memory"] / "memory.max_usage_in_bytes").read_text())
        return None

    def _sample_once(self) -> None:
        st = self.memory_stat()
        if st:
            self.max_anon = max(self.max_anon, st.get("rss", 0))
        self.max_rss_sum = max(self.max_rss_sum, self.rss_sum())

    def start_sampling(self, interval: float = 0.1) -> None:
        self._stop.clear()
        self._sample_once()

        def loop():
            while not self._stop.wait(interval):
                self._sample_once()

        self._sampler = threading.Thread(target=loop, name=f"sampler-{self.label}", daemon=True)
        self._sampler.start()

    def stop_sampling(self) -> None:
        self._stop.set()
        if self._sampler:
            self._sampler.join(timeout=5)
            self._sampler = None
        self._sample_once()

    def kill_remaining(self, timeout: float = 10) -> list[int]:
        """SIGKILLs what is left of this server (processes we started); returns them."""
        left = [p for p in self.pids() if p != os.getpid()]
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        return left

    def close(self) -> None:
        self.stop_sampling()
        if self.cg or self.root_pid is not None:
            self.kill_remaining()
        for d in self.cg.values():
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
        self.cg = {}
        self.root_pid = None
        if self._token is not None:
            CLEANUP.pop(self._token)
            self._token = None



class CombinedAccounting:
    """Several servers' accountings read as one (tern and the PostgreSQL it keeps its
    queue in): CPU summed, peak memory summed (each part's own peak, so an upper bound
    of the peak of the sum); `parts` lets a window report each part too."""

    def __init__(self, parts: dict[str, Accounting]) -> None:
        self.parts = parts

    @property
    def mode(self) -> str:
        return " + ".join(f"{k}: {a.mode}" for k, a in self.parts.items())

    def cpu_ns(self) -> int:
        return sum(a.cpu_ns() for a in self.parts.values())

    def user_sys_s(self) -> tuple[float, float] | None:
        got = [a.user_sys_s() for a in self.parts.values()]
        if any(g is None for g in got):
            return None
        return sum(g[0] for g in got), sum(g[1] for g in got)

    def memory_stat(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.parts.values():
            for k, v in a.memory_stat().items():
                out[k] = out.get(k, 0) + v
        return out

    def reset_peak(self) -> None:
        for a in self.parts.values():
            a.reset_peak()

    def peak_bytes(self) -> int | None:
        got = [a.peak_bytes() for a in self.parts.values()]
        return None if any(g is None for g in got) else sum(got)

    @property
    def max_anon(self) -> int:
        return sum(a.max_anon for a in self.parts.values())

    @property
    def max_rss_sum(self) -> int:
        return sum(a.max_rss_sum for a in self.parts.values())

    def start_sampling(self, interval: float = 0.1) -> None:
        for a in self.parts.values():
            a.start_sampling(interval)

    def stop_sampling(self) -> None:
        for a in self.parts.values():
            a.stop_sampling()
