"""What the machine and its processes are doing, read from /proc.

Process memory and CPU (/proc/<pid>/status, stat, task/*/stat), the process tree,
the CPU the whole machine spent (to tell how much other work disturbed a run),
a wait for a quiet machine, and an fsync probe that says what the disk was like.
new_run() and end_warmup() are the steps every scenario's run shares; Window is
the measured part of a run, end_to_end() the rates of a delivering one.
Per-server accounting through cgroups is in accounting.py.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path

from cleanup import log

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM / Threads from /proc/<pid>/status (kB values)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def proc_cpu_ticks(pid: int, with_children: bool = True) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # fields[0] is state (field 3); utime=14, stime=15, cutime=16, cstime=17
    t = int(fields[11]) + int(fields[12])
    if with_children:
        t += int(fields[13]) + int(fields[14])
    return t


def thread_cpu(pid: int) -> dict[int, tuple[str, int, int]]:
    """{tid: (name, user ticks, system ticks)} for every thread of a process."""
    out: dict[int, tuple[str, int, int]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except OSError:
            continue
        name = text[text.find("(") + 1:text.rfind(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[int(tid)] = (name, int(fields[11]), int(fields[12]))
    return out


def thread_cpu_delta(before: dict, after: dict) -> list[dict]:
    """CPU seconds per thread between two thread_cpu() readings, busiest first.
    Threads are numbered in creation order (tids grow), since tern's threads
    share one name."""
    rows = []
    for i, tid in enumerate(sorted(after)):
        name, u1, s1 = after[tid]
        _, u0, s0 = before.get(tid, (name, 0, 0))
        rows.append({"thread": i, "tid": tid, "name": name,
                     "user_s": round((u1 - u0) / CLK_TCK, 2), "sys_s": round((s1 - s0) / CLK_TCK, 2)})
    rows.sort(key=lambda r: -(r["user_s"] + r["sys_s"]))
    return rows


def proc_children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def descendants(root: int) -> list[int]:
    kids = proc_children_map()
    out, todo = [], [root]
    while todo and len(out) < 100000:
        p = todo.pop()
        if os.path.exists(f"/proc/{p}"):
            out.append(p)
        todo.extend(kids.get(p, []))
    return out


def nofile_limit(pid: int) -> int | None:
    try:
        for line in open(f"/proc/{pid}/limits"):
            if line.startswith("Max open files"):
                return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        pass
    return None


def fsync_probe(folder: Path, count: int = 200) -> float:
    """Mean ms per write(1 KB)+fsync on the benchmark disk (context for the numbers)."""
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        t0 = time.perf_counter()
        for _ in range(count):
            os.write(fd, b"x" * 1024)
            os.fsync(fd)
        return (time.perf_counter() - t0) / count * 1000.0
    finally:
        os.close(fd)
        path.unlink()


def system_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest is already in user)
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / CLK_TCK


def machine_cpu() -> dict[str, float]:
    """Task CPU (user+nice+system+steal), interrupts (irq+softirq: loopback networking
    and disk completions) and kernel threads' CPU, machine-wide, in seconds."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    kthreads = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] in ("0", "2"):          # kthreadd and its children
            kthreads += int(fields[11]) + int(fields[12])
    return {"tasks": (v[0] + v[1] + v[2] + (v[7] if len(v) > 7 else 0)) / CLK_TCK,
            "irq": (v[5] + v[6]) / CLK_TCK, "kthreads": kthreads / CLK_TCK}


def foreign_cpu(res: dict, m0: dict, m1: dict, ours_s: float) -> None:
    """Stores in res the CPU the machine spent on anything but `ours_s` (the servers,
    smtp-source and this script): other people's jobs make the numbers noisy. Also
    interrupts (loopback networking, disk completions) and kernel threads (writeback).
    cpuacct charges the interrupt time spent in a task to that task, so irq is in."""
    res["foreign_cpu_s"] = round((m1["tasks"] - m0["tasks"]) + (m1["irq"] - m0["irq"])
                                 - (m1["kthreads"] - m0["kthreads"]) - ours_s, 3)
    res["irq_cpu_s"] = round(m1["irq"] - m0["irq"], 3)
    res["kthreads_cpu_s"] = round(m1["kthreads"] - m0["kthreads"], 3)
    res["loadavg"] = os.getloadavg()[0]


def new_run(benchmark: str, kind: str, scenario: dict, args) -> tuple[dict, "Phases"]:
    """The result of one run of a scenario, before it starts, and its phase clock."""
    messages = scenario["messages"]
    res: dict = {"benchmark": benchmark, "server": kind, "scenario": scenario["name"],
                 "sessions": scenario["sessions"], "messages": messages, "size": args.size,
                 "warmup": min(args.warmup, messages), "errors": [], "phases_s": {}}
    return res, Phases(res["phases_s"])


def end_warmup(phase: "Phases") -> None:
    """Ends the warm-up; the measurement starts from a clean page cache."""
    phase("warmup")
    os.sync()
    phase("sync")


class Window:
    """A measured window of one server: its cgroup's CPU (user/system split), its
    threads' CPU (pid, for tern), peak memory, and the machine's and this process's
    CPU, to tell what other work took. Starting it resets the peak and starts the
    memory sampling; end() takes the second readings and stops the sampling. A combined
    accounting (tern and its PostgreSQL) is read as a whole, and each part apart too."""

    def __init__(self, acct, pid: int | None = None) -> None:
        self.acct, self.pid = acct, pid
        self.parts = getattr(acct, "parts", {})
        acct.reset_peak()
        acct.start_sampling()
        self.m0, self.self0 = machine_cpu(), self_cpu_s()
        self.parts0 = {k: a.cpu_ns() for k, a in self.parts.items()}
        self.cpu0, self.us0 = acct.cpu_ns(), acct.user_sys_s()
        self.threads0 = thread_cpu(pid) if pid else {}

    def end(self) -> None:
        self.cpu1, self.us1 = self.acct.cpu_ns(), self.acct.user_sys_s()
        self.parts1 = {k: a.cpu_ns() for k, a in self.parts.items()}
        self.threads1 = thread_cpu(self.pid) if self.pid else {}
        self.m1, self.self1 = machine_cpu(), self_cpu_s()
        self.acct.stop_sampling()
        self.peak = self.acct.peak_bytes()

    @property
    def cpu_s(self) -> float:
        return (self.cpu1 - self.cpu0) / 1e9

    def store(self, res: dict, others_s: float, folder: Path) -> None:
        """Into res: the user/system split, (for tern) the 12 busiest threads, the
        foreign CPU (ours = the server, this process and others_s: smtp-source, a
        sink), peak memory, and an fsync probe in `folder` for the disk's state."""
        if self.us0 and self.us1:
            res["cpu_user_s"] = round(self.us1[0] - self.us0[0], 3)
            res["cpu_sys_s"] = round(self.us1[1] - self.us0[1], 3)
        if self.threads1:
            res["threads_cpu"] = thread_cpu_delta(self.threads0, self.threads1)[:12]
        foreign_cpu(res, self.m0, self.m1, self.cpu_s + others_s + (self.self1 - self.self0))
        res["peak_cgroup_mb"] = self.peak / 2**20 if self.peak is not None else None
        res["peak_anon_mb"] = self.acct.max_anon / 2**20 if self.acct.max_anon else None
        res["peak_rss_sum_mb"] = self.acct.max_rss_sum / 2**20
        res["fsync_ms_after"] = round(fsync_probe(folder, 30), 3)
        if self.parts:
            res["parts"] = {}
            for k, a in self.parts.items():
                peak = a.peak_bytes()
                res["parts"][k] = {"cpu_s": round((self.parts1[k] - self.parts0[k]) / 1e9, 3),
                                   "peak_anon_mb": a.max_anon / 2**20 if a.max_anon else None,
                                   "peak_rss_sum_mb": a.max_rss_sum / 2**20,
                                   "peak_cgroup_mb": peak / 2**20 if peak is not None else None}


def end_to_end(res: dict, messages: int, wall: float, inject_wall: float, cpu_s: float) -> None:
    """The rates of a delivering run, into res: `messages` delivered in `wall` seconds
    from the start of smtp-source, which itself took `inject_wall`."""
    res["wall_s"] = wall
    res["delivered_per_s"] = messages / wall
    res["inject_per_s"] = messages / inject_wall if inject_wall > 0 else None
    res["drain_after_inject_s"] = round(max(0.0, wall - inject_wall), 3)
    res["cpu_s"] = cpu_s
    res["cpu_ms_per_msg"] = cpu_s / messages * 1000


class Phases:
    """Wall time of each step of a run (start, warm-up, ..., remove), for the JSON."""

    def __init__(self, into: dict) -> None:
        self.into = into
        self.mark = time.monotonic()

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        self.into[name] = round(now - self.mark, 3)
        self.mark = now


def noisy(r: dict, limit: float) -> bool:
    """Did other work use more than `limit` of the machine during the run?"""
    f, w = r.get("foreign_cpu_s"), r.get("wall_s")
    # Half a CPU second at least: shorter runs are within the tick granularity of /proc.
    return f is not None and bool(w) and f > max(0.5, limit * w * (os.cpu_count() or 1))


def wait_quiet(limit: float) -> None:
    """Waits (at most `limit` seconds) until the machine has been under 10% busy for 3 s."""
    deadline = time.monotonic() + limit
    quiet_since = None
    prev = system_busy_s()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = system_busy_s()
        busy = (now - prev) / 0.5 / (os.cpu_count() or 1)
        prev = now
        if busy < 0.10:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= 3:
                return
        else:
            quiet_since = None
    log(f"bench: the machine did not become quiet within {limit:.0f}s; measuring anyway")


def self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_text(cmd: list[str], timeout: float = 30) -> str:
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"({e})"
