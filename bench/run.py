#!/usr/bin/python3
"""tern and Postfix side by side (what `make bench` runs).

Starts, in fresh temp folders on the same disk:
  * tern        (build/tern serve, generated config, spool synced before 250),
  * Postfix     (a private instance: own config, queue and data directories,
                 smtpd on 127.0.0.1:<free port>, every message put on hold, so it
                 receives, syncs and replies but never delivers),
  * smtp-sink   (Postfix's non-queuing test server: the upper bound),
and drives them with Postfix's own smtp-source, alternating servers, same message
size and concurrency. Measures messages/s, latency, server CPU (all processes of a
server, through a cgroup v1 child per server) and peak memory; then opens 10,000
idle connections to tern and measures its resident memory.

Python 3.11 standard library only. Loopback only. Everything it starts is stopped
and every temp folder removed on exit, also on errors and signals.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import errno
import json
import os
import platform
import pwd
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "latest.json"

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"

HOST = "127.0.0.1"
SENDER = "bench@client.test"
RECIPIENT = "sink@example.test"
HELO = "client.test"
TERN_NOFILE = 65536          # RLIMIT_NOFILE given to tern (10,000 idle connections)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------
# Cleanup: every process and folder we create is registered here; run in
# reverse order on normal exit, exceptions, SIGINT/SIGTERM/SIGHUP and atexit.

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


# --------------------------------------------------------------------------
# Helpers

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


# --------------------------------------------------------------------------
# Accounting: a cgroup v1 child per server (cpuacct + memory), created under this
# process's own cgroups; the server's first process joins it before it forks, so
# every child (Postfix master, smtpd, cleanup, qmgr, ...) is counted. Falls back to
# /proc accounting of the server's process tree when cgroups are not writable.

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


# --------------------------------------------------------------------------
# Servers

class Server:
    kind = "?"
    label = "?"
    port = 0
    acct: Accounting

    def start(self) -> None: ...
    def stop(self) -> dict: ...
    def queued(self) -> dict | None: return None
    def notes(self) -> list[str]: return []


TERN_CONFIG = """\
# generated by bench/run.py
hostname = "bench.example.test"

[[listener]]
name = "bench"
address = "127.0.0.1:0"
max_recipients = 1000

[spool]
path = "spool"
min_free = "10MB"

[domains]
accepted = ["example.test"]

[[mailbox]]
address = "sink@example.test"
maildir = "mail/sink"

[relay]
networks = ["127.0.0.0/8"]

[log]
directory = "log"
protocol = {protocol}
"""


class TernServer(Server):
    kind = "tern"

    def __init__(self, binary: Path, top: Path, protocol_log: bool, use_cgroups: bool, label: str) -> None:
        self.binary = binary
        self.label = label
        self.protocol_log = protocol_log
        self.dir = Path(tempfile.mkdtemp(prefix="tern-", dir=top))
        for sub in ("spool", "log", "mail"):
            (self.dir / sub).mkdir()
        self.config = self.dir / "tern.toml"
        self.config.write_text(TERN_CONFIG.format(protocol="true" if protocol_log else "false"))
        self.acct = Accounting(label, use_cgroups)
        self.acct.exe_prefixes = (str(binary),)
        self.proc: subprocess.Popen | None = None
        self.stderr_lines: list[str] = []
        self._drain: threading.Thread | None = None
        self._token = None
        self.ready_line = ""

    def start(self) -> None:
        acct = self.acct

        def pre():
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (TERN_NOFILE, TERN_NOFILE))
            except (ValueError, OSError):
                _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            acct.join_current_process()

        self.proc = subprocess.Popen(
            [str(self.binary), "serve", "--config", str(self.config)],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=open(self.dir / "stdout.log", "wb"),
            stderr=subprocess.PIPE, preexec_fn=pre, start_new_session=True)
        self._token = CLEANUP.push(f"tern pid {self.proc.pid}", self._kill)
        acct.root_pid = self.proc.pid

        # Read stderr until "tern: ready"; the port comes from "tern: listening bench host:port".
        fd = self.proc.stderr.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        buf = b""
        deadline = time.monotonic() + 30
        port = None
        ready = False
        try:
            while not ready:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BenchError("tern did not print 'tern: ready' within 30s: " + " | ".join(self.stderr_lines))
                if not sel.select(min(remaining, 1.0)):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    rc = self.proc.wait(timeout=5)
                    raise BenchError(f"tern exited with {rc} at start: " + " | ".join(self.stderr_lines))
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    text = line.decode("utf-8", "replace")
                    self.stderr_lines.append(text)
                    if text.startswith("tern: listening bench "):
                        port = int(text.rsplit(":", 1)[1])
                    elif text.startswith("tern: ready"):
                        ready = True
                        self.ready_line = text
        finally:
            sel.close()
        if port is None:
            raise BenchError("tern printed no 'tern: listening bench' line: " + " | ".join(self.stderr_lines))
        self.port = port
        rest = buf

        def drain():
            data = rest
            with open(self.dir / "stderr.log", "ab") as out:
                out.write("\n".join(self.stderr_lines).encode() + b"\n")
                while True:
                    while b"\n" in data:
                        line, data = data.split(b"\n", 1)
                        self.stderr_lines.append(line.decode("utf-8", "replace"))
                        out.write(line + b"\n")
                    try:
                        chunk = os.read(fd, 65536)
                    except OSError:
                        break
                    if not chunk:
                        break
                    data += chunk
                if data:
                    self.stderr_lines.append(data.decode("utf-8", "replace"))

        self._drain = threading.Thread(target=drain, name="tern-stderr", daemon=True)
        self._drain.start()

    def _kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def queued(self) -> dict:
        t0 = time.monotonic()
        p = subprocess.run([str(self.binary), "queue", "list", "--json", "--config", str(self.config)],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
        took = time.monotonic() - t0
        if p.returncode != 0:
            raise BenchError(f"tern queue list failed ({p.returncode}): {p.stderr.strip()}")
        items = json.loads(p.stdout)
        statuses: dict[str, int] = {}
        for m in items:
            for r in m.get("recipients", []):
                statuses[r.get("status", "?")] = statuses.get(r.get("status", "?"), 0) + 1
        return {"count": len(items), "recipient_status": statuses, "list_seconds": round(took, 3)}

    def stop(self) -> dict:
        out: dict = {}
        if self.proc is None:
            return out
        pid = self.proc.pid
        out["vm"] = proc_status(pid)
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                out["stop_error"] = "did not stop within 45s of SIGTERM; killed"
                self.proc.kill()
                self.proc.wait(timeout=10)
        out["exit_code"] = self.proc.returncode
        out["stop_seconds"] = round(time.monotonic() - t0, 3)
        if self._drain:
            self._drain.join(timeout=10)
        if self._token:
            CLEANUP.pop(self._token)
        out["leftover_processes"] = len(self.acct.kill_remaining())
        self.acct.close()
        return out

    def notes(self) -> list[str]:
        boring = ("tern: listening", "tern: ready", "tern: stopping", "tern: stopped")
        return [l for l in self.stderr_lines if l.strip() and not l.startswith(boring)]


POSTFIX_MAIN_CF = """\
# generated by bench/run.py: a private Postfix that receives, syncs, replies and
# puts every message on hold (never delivers).
compatibility_level = 3.6
config_directory = {d}/etc
queue_directory = {d}/queue
data_directory = {d}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {d}/log/maillog
maillog_file_prefixes = {d}
myhostname = bench.example.test
mydomain = example.test
myorigin = $myhostname
mydestination =
relay_domains = example.test
relay_recipient_maps =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtpd_client_restrictions = check_client_access static:HOLD
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
biff = no
append_dot_mydomain = no
readme_directory = no
html_directory = no
"""

# No pickup, no delivery agents (smtp, local, ...), no chroot; only our smtpd port.
POSTFIX_MASTER_CF = """\
# generated by bench/run.py
{host}:{port} inet n - n - - smtpd
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class PostfixServer(Server):
    kind = "postfix"
    label = "postfix"

    def __init__(self, top: Path, use_cgroups: bool) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="postfix-", dir=top))
        os.chmod(self.dir, 0o755)       # the postfix user must traverse into queue/
        self.etc = self.dir / "etc"
        self.queue = self.dir / "queue"
        for sub in ("etc", "queue", "data", "log"):
            (self.dir / sub).mkdir(mode=0o755)
        pw = pwd.getpwnam("postfix")
        os.chown(self.dir / "data", pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir / "data", 0o700)
        (self.etc / "main.cf").write_text(POSTFIX_MAIN_CF.format(d=self.dir))
        self.acct = Accounting("postfix", use_cgroups)
        self.acct.exe_prefixes = ("/usr/lib/postfix/", "/usr/sbin/post")
        self._token = None
        self.maillog = self.dir / "log" / "maillog"

    def _postfix(self, *args: str, timeout: float = 60, preexec=None) -> subprocess.CompletedProcess:
        return subprocess.run([POSTFIX, "-c", str(self.etc), *args], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, preexec_fn=preexec,
                              start_new_session=True)

    def maillog_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.maillog.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no maillog)"

    def start(self) -> None:
        last_error = ""
        self._token = CLEANUP.push("postfix instance", self._emergency_stop)
        for _attempt in range(3):            # a free port may be taken between probe and bind
            self.port = free_port()
            (self.etc / "master.cf").write_text(POSTFIX_MASTER_CF.format(host=HOST, port=self.port))
            p = self._postfix("check")
            if p.returncode != 0:
                raise BenchError(f"postfix check failed: {p.stdout}{p.stderr}\n{self.maillog_tail()}")
            p = self._postfix("start", preexec=self.acct.join_current_process)
            if p.returncode == 0:
                break
            last_error = f"{p.stdout}{p.stderr}\n{self.maillog_tail()}"
            self._emergency_stop()
        else:
            raise BenchError("postfix start failed: " + last_error)
        pid_file = self.queue / "pid" / "master.pid"
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            self.acct.root_pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            raise BenchError("postfix started but wrote no master.pid\n" + self.maillog_tail())
        wait_banner(self.port, 15)

    def _emergency_stop(self) -> None:
        try:
            self._postfix("stop", timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.acct.kill_remaining()

    def queued(self) -> dict:
        counts = {}
        for q in ("maildrop", "incoming", "active", "deferred", "hold", "corrupt"):
            n = 0
            for _root, _dirs, files in os.walk(self.queue / q):
                n += len(files)
            counts[q] = n
        return {"count": counts["hold"], "queues": counts}

    def stop(self) -> dict:
        out: dict = {}
        t0 = time.monotonic()
        try:
            p = self._postfix("stop", timeout=60)
            out["exit_code"] = p.returncode
        except subprocess.TimeoutExpired:
            out["stop_error"] = "postfix stop took over 60s"
        deadline = time.monotonic() + 15
        while self.acct.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        out["leftover_processes"] = len(self.acct.kill_remaining())
        out["stop_seconds"] = round(time.monotonic() - t0, 3)
        if self._token:
            CLEANUP.pop(self._token)
        self.acct.close()
        return out

    def notes(self) -> list[str]:
        try:
            lines = self.maillog.read_text(errors="replace").splitlines()
        except OSError:
            return []
        bad = [l for l in lines if any(w in l for w in (" warning: ", " error: ", " fatal: ", " panic: ", "reject:"))
               and "not owned by" not in l]
        return bad[:20] + ([f"... {len(bad) - 20} more"] if len(bad) > 20 else [])


class SinkServer(Server):
    kind = "sink"
    label = "smtp-sink"

    def __init__(self, top: Path, use_cgroups: bool) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sink-", dir=top))
        self.acct = Accounting("smtp-sink", use_cgroups)
        self.acct.exe_prefixes = (SMTP_SINK,)
        self.proc: subprocess.Popen | None = None
        self._token = None

    def start(self) -> None:
        last = ""
        for _attempt in range(3):
            self.port = free_port()
            cmd = [SMTP_SINK]
            if os.geteuid() == 0:
                cmd += ["-u", "nobody"]
            cmd += [f"{HOST}:{self.port}", "1024"]
            self.proc = subprocess.Popen(cmd, cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=open(self.dir / "out.log", "wb"), stderr=subprocess.STDOUT,
                                         preexec_fn=self.acct.join_current_process, start_new_session=True)
            self._token = CLEANUP.push(f"smtp-sink pid {self.proc.pid}", self._kill)
            self.acct.root_pid = self.proc.pid
            try:
                wait_banner(self.port, 10, self.proc)
                return
            except BenchError as e:
                last = str(e) + " " + (self.dir / "out.log").read_text(errors="replace")
                self._kill()
        raise BenchError("smtp-sink did not start: " + last)

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
        if self._token:
            CLEANUP.pop(self._token)
        out = {"leftover_processes": len(self.acct.kill_remaining())}
        self.acct.close()
        return out


# --------------------------------------------------------------------------
# Load: Postfix's smtp-source

def smtp_source(port: int, messages: int, sessions: int, size: int, reuse: bool) -> dict:
    cmd = [SMTP_SOURCE, "-l", str(size), "-m", str(messages), "-s", str(sessions),
           "-f", SENDER, "-t", RECIPIENT, "-M", HELO]
    if reuse:
        cmd.append("-d")
    cmd.append(f"{HOST}:{port}")
    timeout = 120 + messages / 50.0
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        rc, err = p.returncode, (p.stdout + p.stderr).strip()
    except subprocess.TimeoutExpired as e:
        rc, err = -1, f"smtp-source timed out after {timeout:.0f}s; " + str(e.stderr or "")
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cmd": " ".join(cmd), "rc": rc, "wall_s": wall,
            "client_cpu_s": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
            "output": err[-2000:]}


def make_server(kind: str, args, top: Path, tern_binary: Path) -> Server:
    if kind == "tern":
        return TernServer(tern_binary, top, False, not args.no_cgroups, "tern")
    if kind == "tern+plog":
        return TernServer(tern_binary, top, True, not args.no_cgroups, "tern+plog")
    if kind == "postfix":
        return PostfixServer(top, not args.no_cgroups)
    if kind == "sink":
        return SinkServer(top, not args.no_cgroups)
    raise ValueError(kind)


def measure(kind: str, scenario: dict, args, top: Path, tern_binary: Path) -> dict:
    sessions, messages = scenario["sessions"], scenario["messages"]
    warmup = min(args.warmup, messages)
    res: dict = {"server": kind, "scenario": scenario["name"], "sessions": sessions, "messages": messages,
                 "size": args.size, "warmup": warmup, "errors": []}
    srv = make_server(kind, args, top, tern_binary)
    res["accounting"] = srv.acct.mode
    phases: dict[str, float] = {}
    res["phases_s"] = phases
    mark = [time.monotonic()]

    def phase(name: str) -> None:
        now = time.monotonic()
        phases[name] = round(now - mark[0], 3)
        mark[0] = now

    try:
        srv.start()
        phase("start")
        res["port"] = srv.port
        if isinstance(srv, TernServer):
            res["ready"] = srv.ready_line
            res["nofile_limit"] = nofile_limit(srv.proc.pid)
        # Warm-up, which is also the check that the server accepts and queues mail.
        w = smtp_source(srv.port, warmup, sessions, args.size, args.reuse)
        if w["rc"] != 0:
            res["errors"].append(f"warm-up smtp-source rc={w['rc']}: {w['output']}")
        q0 = srv.queued()
        if q0 is not None:
            res["queued_before"] = q0
            if q0["count"] != warmup:
                res["errors"].append(f"after warm-up {q0['count']} messages queued, expected {warmup}")
        phase("warmup")
        os.sync()                               # start from a clean page cache, outside the window
        phase("sync")
        srv.acct.reset_peak()
        srv.acct.start_sampling()
        m0, self0 = machine_cpu(), self_cpu_s()
        cpu0, us0 = srv.acct.cpu_ns(), srv.acct.user_sys_s()
        r = smtp_source(srv.port, messages, sessions, args.size, args.reuse)
        cpu1, us1 = srv.acct.cpu_ns(), srv.acct.user_sys_s()
        if us0 and us1:
            res["cpu_user_s"] = round(us1[0] - us0[0], 3)
            res["cpu_sys_s"] = round(us1[1] - us0[1], 3)
        m1, self1 = machine_cpu(), self_cpu_s()
        srv.acct.stop_sampling()
        # CPU the machine spent on processes other than this server, smtp-source and
        # this script (other people's jobs: they make the numbers noisy), on interrupts
        # (loopback networking, disk completions) and on kernel threads (writeback).
        # (cpuacct charges the interrupt time spent in a task to that task, so irq is in.)
        res["foreign_cpu_s"] = round((m1["tasks"] - m0["tasks"]) + (m1["irq"] - m0["irq"])
                                     - (m1["kthreads"] - m0["kthreads"])
                                     - (cpu1 - cpu0) / 1e9 - r["client_cpu_s"] - (self1 - self0), 3)
        res["irq_cpu_s"] = round(m1["irq"] - m0["irq"], 3)
        res["kthreads_cpu_s"] = round(m1["kthreads"] - m0["kthreads"], 3)
        res["loadavg"] = os.getloadavg()[0]
        peak = srv.acct.peak_bytes()
        res.update(r)
        if r["rc"] != 0:
            res["errors"].append(f"smtp-source rc={r['rc']}: {r['output']}")
        elif r["output"]:
            res["errors"].append(f"smtp-source said: {r['output']}")
        res["fsync_ms_after"] = round(fsync_probe(srv.dir, 30), 3)   # the disk's state, for context
        phase("measured")
        accepted = messages
        q1 = srv.queued()
        phase("queue_check")
        if q1 is not None:
            res["queued_after"] = q1
            accepted = q1["count"] - (q0["count"] if q0 else 0)
            if accepted != messages:
                res["errors"].append(f"{accepted} messages queued by the measured run, expected {messages}")
            if kind == "postfix":
                other = {k: v for k, v in q1["queues"].items() if k != "hold" and v}
                if other:
                    res["errors"].append(f"postfix messages outside hold: {other}")
        res["accepted"] = accepted
        wall = r["wall_s"]
        cpu_s = (cpu1 - cpu0) / 1e9
        res["msgs_per_s"] = accepted / wall if wall > 0 else 0.0
        # Mean time per message per session (Little's law); for -s 1 it is the latency.
        res["latency_ms"] = wall * sessions / accepted * 1000 if accepted else None
        res["cpu_s"] = cpu_s
        res["cpu_ms_per_msg"] = cpu_s / accepted * 1000 if accepted else None
        res["peak_cgroup_mb"] = peak / 2**20 if peak is not None else None
        res["peak_anon_mb"] = srv.acct.max_anon / 2**20 if srv.acct.max_anon else None
        res["peak_rss_sum_mb"] = srv.acct.max_rss_sum / 2**20
    except (BenchError, OSError, subprocess.SubprocessError, ValueError) as e:
        res["errors"].append(f"failed: {e}")
    finally:
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
        if not args.keep:
            shutil.rmtree(srv.dir, ignore_errors=True)
        phase("remove")
    return res


def nofile_limit(pid: int) -> int | None:
    try:
        for line in open(f"/proc/{pid}/limits"):
            if line.startswith("Max open files"):
                return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        pass
    return None


def noisy(r: dict, limit: float) -> bool:
    f, w = r.get("foreign_cpu_s"), r.get("wall_s")
    # Half a CPU second at least: shorter runs are within the tick granularity of /proc.
    return f is not None and bool(w) and f > max(0.5, limit * w * (os.cpu_count() or 1))


# --------------------------------------------------------------------------
# 10,000 idle connections to tern

def idle_connections(args, top: Path, tern_binary: Path) -> dict:
    n = args.idle
    res: dict = {"target": n, "errors": []}
    need = n + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if soft < need:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(need, soft), max(need, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if hard < need:
            n = max(0, hard - 256)
            res["errors"].append(f"client RLIMIT_NOFILE hard limit {hard}: only {n} connections")
    srv = TernServer(tern_binary, top, False, not args.no_cgroups, "tern-idle")
    res["accounting"] = srv.acct.mode
    socks: dict[int, socket.socket] = {}
    try:
        srv.start()
        pid = srv.proc.pid
        res["nofile_limit"] = nofile_limit(pid)
        res["rss_before_mb"] = proc_status(pid).get("VmRSS", 0) / 1024
        res["cgroup_before_mb"] = srv.acct.memory_stat().get("usage_in_bytes", 0) / 2**20
        res["fds_before"] = len(os.listdir(f"/proc/{pid}/fd"))
        srv.acct.reset_peak()

        sel = selectors.DefaultSelector()
        bufs: dict[int, bytes] = {}
        connecting: set[int] = set()
        idle: list[socket.socket] = []
        failures: dict[str, int] = {}
        started = 0
        in_flight_max = 512
        t0 = time.monotonic()
        deadline = t0 + args.idle_timeout

        def fail(fd: int, why: str) -> None:
            failures[why] = failures.get(why, 0) + 1
            s = socks.pop(fd)
            try:
                sel.unregister(s)
            except (KeyError, ValueError):
                pass
            connecting.discard(fd)
            bufs.pop(fd, None)
            s.close()

        while len(idle) + sum(failures.values()) < n and time.monotonic() < deadline:
            while started < n and len(socks) - len(idle) < in_flight_max:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                started += 1
                rc = s.connect_ex((HOST, srv.port))
                fd = s.fileno()
                socks[fd] = s
                if rc in (0, errno.EINPROGRESS):
                    connecting.add(fd)
                    bufs[fd] = b""
                    sel.register(s, selectors.EVENT_WRITE)
                else:
                    failures[errno.errorcode.get(rc, str(rc))] = failures.get(errno.errorcode.get(rc, str(rc)), 0) + 1
                    socks.pop(fd)
                    s.close()
            for key, _ev in sel.select(timeout=min(1.0, max(0.0, deadline - time.monotonic()))):
                s = key.fileobj
                fd = s.fileno()
                if fd in connecting:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        fail(fd, "connect " + errno.errorcode.get(err, str(err)))
                        continue
                    connecting.discard(fd)
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                try:
                    chunk = s.recv(4096)
                except OSError as e:
                    fail(fd, "recv " + errno.errorcode.get(e.errno or 0, str(e)))
                    continue
                if not chunk:
                    fail(fd, "closed before banner")
                    continue
                bufs[fd] += chunk
                if b"\n" in bufs[fd]:
                    if not bufs[fd].startswith(b"220"):
                        fail(fd, "banner " + bufs[fd][:40].decode("ascii", "replace").strip())
                        continue
                    sel.unregister(s)
                    bufs.pop(fd, None)
                    idle.append(s)
        open_s = time.monotonic() - t0
        sel.close()
        res["open_seconds"] = round(open_s, 3)
        res["connections_idle"] = len(idle)
        res["failures"] = failures
        if len(idle) < n:
            res["errors"].append(f"only {len(idle)} of {n} connections got a banner within "
                                 f"{args.idle_timeout:.0f}s; failures: {failures}")
        # Let them sit idle a moment, then measure.
        time.sleep(1.0)
        st = proc_status(pid)
        mem = srv.acct.memory_stat()
        res["rss_idle_mb"] = st.get("VmRSS", 0) / 1024
        res["hwm_idle_mb"] = st.get("VmHWM", 0) / 1024
        res["threads"] = st.get("Threads")
        res["cgroup_usage_mb"] = mem.get("usage_in_bytes", 0) / 2**20 if mem else None
        res["cgroup_anon_mb"] = mem.get("rss", 0) / 2**20 if mem else None
        peak = srv.acct.peak_bytes()
        res["cgroup_peak_mb"] = peak / 2**20 if peak is not None else None
        res["fds_idle"] = len(os.listdir(f"/proc/{pid}/fd"))
        if idle:
            res["rss_per_connection_kb"] = (res["rss_idle_mb"] - res["rss_before_mb"]) * 1024 / len(idle)
        res["alive_while_idle"] = srv.proc.poll() is None
        # Is tern still responsive with all of them open? 100 messages, one session.
        if srv.proc.poll() is None:
            r = smtp_source(srv.port, 100, 1, args.size, False)
            res["latency_with_idle_ms"] = r["wall_s"] / 100 * 1000
            if r["rc"] != 0:
                res["errors"].append(f"smtp-source with idle connections open: rc={r['rc']} {r['output']}")
        t1 = time.monotonic()
        for s in idle:
            s.close()
        for s in list(socks.values()):
            s.close()
        socks.clear()
        # Wait (bounded) for tern to notice the closes.
        fds = None
        while time.monotonic() - t1 < 20:
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            if fds <= res["fds_before"] + 5:
                break
            time.sleep(0.1)
        res["close_seconds"] = round(time.monotonic() - t1, 3)
        res["fds_after_close"] = fds
        res["rss_after_close_mb"] = proc_status(pid).get("VmRSS", 0) / 1024
    except (BenchError, OSError, subprocess.SubprocessError, ValueError) as e:
        res["errors"].append(f"failed: {e}")
    finally:
        for s in socks.values():
            s.close()
        try:
            res["stop"] = srv.stop()
        except Exception as e:  # noqa: BLE001
            res["errors"].append(f"stop failed: {e}")
        if res.get("stop", {}).get("exit_code") not in (0, None):
            res["errors"].append(f"tern exited with {res['stop'].get('exit_code')} on SIGTERM")
        notes = srv.notes()
        if notes:
            res["server_messages"] = notes[:30]
        if not args.keep:
            shutil.rmtree(srv.dir, ignore_errors=True)
    return res


# --------------------------------------------------------------------------
# Report

def fmt(v, spec=".1f", none="-") -> str:
    return none if v is None else format(v, spec)


def median_run(runs: list[dict]) -> dict | None:
    good = [r for r in runs if r.get("msgs_per_s")]
    if not good:
        return runs[0] if runs else None
    good.sort(key=lambda r: r["msgs_per_s"])
    return good[(len(good) - 1) // 2]


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def summarize(runs: list[dict], scenarios: list[dict], servers: list[str]) -> dict:
    summary: dict = {}
    for sc in scenarios:
        entry: dict = {"sessions": sc["sessions"], "messages": sc["messages"], "servers": {}, "ratios": {}}
        for kind in servers:
            mine = [r for r in runs if r["scenario"] == sc["name"] and r["server"] == kind
                    and not r.get("discarded")]
            m = median_run(mine)
            if m is None:
                continue
            entry["servers"][kind] = {
                "msgs_per_s": m.get("msgs_per_s"), "latency_ms": m.get("latency_ms"), "cpu_s": m.get("cpu_s"),
                "cpu_ms_per_msg": m.get("cpu_ms_per_msg"), "peak_cgroup_mb": m.get("peak_cgroup_mb"),
                "peak_anon_mb": m.get("peak_anon_mb"), "peak_rss_sum_mb": m.get("peak_rss_sum_mb"),
                "runs": len(mine), "errors": sum(len(r["errors"]) for r in mine),
                "foreign_cpu_s": m.get("foreign_cpu_s"), "wall_s": m.get("wall_s"),
                "msgs_per_s_all": [round(r.get("msgs_per_s") or 0, 1) for r in mine],
            }
        s = entry["servers"]
        for t in [k for k in s if k.startswith("tern")]:
            if "postfix" in s:
                entry["ratios"][f"{t}/postfix"] = {
                    "throughput": ratio(s[t]["msgs_per_s"], s["postfix"]["msgs_per_s"]),
                    "latency": ratio(s[t]["latency_ms"], s["postfix"]["latency_ms"]),
                    "cpu_per_msg": ratio(s[t]["cpu_ms_per_msg"], s["postfix"]["cpu_ms_per_msg"]),
                }
            if "sink" in s:
                entry["ratios"][f"{t}/sink"] = {
                    "throughput": ratio(s[t]["msgs_per_s"], s["sink"]["msgs_per_s"]),
                    "latency": ratio(s[t]["latency_ms"], s["sink"]["latency_ms"]),
                    "cpu_per_msg": ratio(s[t]["cpu_ms_per_msg"], s["sink"]["cpu_ms_per_msg"]),
                }
        summary[sc["name"]] = entry
    return summary


def targets(summary: dict, idle: dict | None) -> list[dict]:
    """The issue's targets (must) and goals (wished for), judged on the medians."""
    out = []

    def add(kind: str, what: str, value: float, ok: bool) -> None:
        out.append({"kind": kind, "what": what, "value": round(value, 2), "met": ok})

    for name, e in summary.items():
        rt = e["ratios"].get("tern/postfix")
        rs = e["ratios"].get("tern/sink")
        if e["sessions"] > 1 and rt and rt["throughput"] is not None:
            add("target", f"{name}: tern msgs/s >= 3x Postfix", rt["throughput"], rt["throughput"] >= 3)
            add("goal", f"{name}: tern msgs/s >= 5x Postfix", rt["throughput"], rt["throughput"] >= 5)
        if e["sessions"] > 1 and rs and rs["throughput"] is not None:
            add("goal", f"{name}: tern msgs/s >= 0.5x smtp-sink", rs["throughput"], rs["throughput"] >= 0.5)
        if e["sessions"] == 1 and rt and rt["latency"] is not None:
            add("target", f"{name}: tern latency <= 0.5x Postfix", rt["latency"], rt["latency"] <= 0.5)
    if idle and idle.get("rss_idle_mb") is not None:
        ok = idle.get("connections_idle") == idle["target"] and idle["rss_idle_mb"] < 256
        add("target", f"{idle['target']} idle connections: tern VmRSS < 256 MB (MB)", idle["rss_idle_mb"], ok)
    return out


LABELS = {"tern": "tern", "tern+plog": "tern+protolog", "postfix": "postfix", "sink": "smtp-sink"}


def print_report(summary: dict, idle: dict | None, tgt: list[dict], meta: dict, runs: list[dict]) -> None:
    p = print
    p("")
    p(f"tern vs Postfix {meta['postfix_version']} vs smtp-sink — {meta['size']} B messages, "
      f"{meta['cpus']} CPUs, fsync {meta['fsync_ms']:.2f}/{meta['fsync_ms_end']:.2f} ms (start/end), median of {meta['repeat']} run(s), "
      f"{'one message per connection' if not meta['reuse'] else 'connections reused (-d)'}")
    p("CPU = all processes of the server (cgroup cpuacct); RSS = peak anonymous memory of the server's "
      "cgroup; cgroup = memory.max_usage_in_bytes (includes the page cache of the queue files).")
    for name, e in summary.items():
        p("")
        p(f"== {name}: {e['sessions']} session(s), {e['messages']} messages ==")
        p(f"  {'server':<14}{'msgs/s':>10}{'ms/msg':>9}{'CPU s':>9}{'CPU ms/msg':>12}{'RSS MB':>9}"
          f"{'cgroup MB':>11}{'errors':>8}   all runs msgs/s")
        for kind, s in e["servers"].items():
            p(f"  {LABELS[kind]:<14}{fmt(s['msgs_per_s']):>10}{fmt(s['latency_ms'], '.3f'):>9}"
              f"{fmt(s['cpu_s'], '.2f'):>9}{fmt(s['cpu_ms_per_msg'], '.3f'):>12}"
              f"{fmt(s['peak_anon_mb'] if s['peak_anon_mb'] is not None else s['peak_rss_sum_mb']):>9}"
              f"{fmt(s['peak_cgroup_mb']):>11}{s['errors']:>8}   {s['msgs_per_s_all']}")
        for key, r in e["ratios"].items():
            a, b = key.split("/")
            p(f"  {LABELS[a]}/{LABELS[b]}: throughput {fmt(r['throughput'], '.2f')}x, "
              f"latency {fmt(r['latency'], '.2f')}x, CPU per message {fmt(r['cpu_per_msg'], '.2f')}x")
    kept = [r for r in runs if not r.get("discarded")]
    loud = [(r["server"], r["scenario"], r["foreign_cpu_s"], r["wall_s"]) for r in kept
            if noisy(r, meta["max_foreign"])]
    redone = len(runs) - len(kept)
    if loud or redone:
        p("")
        p(f"note: {redone} run(s) measured again because other work on the machine used over "
          f"{meta['max_foreign']:.0%} of it; still noisy after retries (other CPU s / wall s): "
          + (", ".join(f"{LABELS[a]} {b} {c:.1f}/{d:.1f}" for a, b, c, d in loud) or "none"))
    if idle:
        p("")
        p(f"== {idle['target']} idle connections to tern ==")
        p(f"  banners read: {idle.get('connections_idle')} in {fmt(idle.get('open_seconds'), '.2f')} s; "
          f"failures {idle.get('failures')}")
        p(f"  tern VmRSS: before {fmt(idle.get('rss_before_mb'))} MB, idle {fmt(idle.get('rss_idle_mb'))} MB "
          f"({fmt(idle.get('rss_per_connection_kb'), '.2f')} KB/connection), after close "
          f"{fmt(idle.get('rss_after_close_mb'))} MB; cgroup usage {fmt(idle.get('cgroup_usage_mb'))} MB "
          f"(anon {fmt(idle.get('cgroup_anon_mb'))} MB); fds {idle.get('fds_idle')}")
        p(f"  latency of 100 messages (1 session) with them open: {fmt(idle.get('latency_with_idle_ms'), '.3f')} ms/msg")
    p("")
    p("== targets ==")
    for t in tgt:
        if t["kind"] == "target":
            verdict = "PASS" if t["met"] else "FAIL"
        else:
            verdict = "goal met" if t["met"] else "goal missed"
        p(f"  {verdict:<13}{t['what']}: {t['value']}")
    errs = [(r["server"], r["scenario"], e) for r in runs for e in r["errors"] if not r.get("discarded")]
    if idle:
        errs += [("tern", "idle", e) for e in idle.get("errors", [])]
    if errs:
        p("")
        p("== errors ==")
        for s, sc, e in errs[:40]:
            p(f"  [{s} {sc}] {e[:500]}")
    p("")
    p(f"total {meta['duration_s']:.0f} s; JSON: {meta['json']}")


# --------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description="tern vs Postfix vs smtp-sink with smtp-source (see bench/README.md)")
    ap.add_argument("--messages", type=int, default=20000, help="messages per concurrent run (default 20000)")
    ap.add_argument("--latency-messages", type=int, default=None,
                    help="messages for the single-session latency run (default messages/4; 0 skips it)")
    ap.add_argument("--sessions", default="10,50", help="concurrent sessions, comma-separated (default 10,50)")
    ap.add_argument("--size", type=int, default=1024, help="message payload bytes, smtp-source -l (default 1024)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per server and scenario, median reported (default 3)")
    ap.add_argument("--warmup", type=int, default=200, help="unmeasured messages before each run (default 200)")
    ap.add_argument("--only", default=None, help="tern|postfix|sink (comma-separated list allowed)")
    ap.add_argument("--protocol-log", choices=("off", "on", "both"), default="off",
                    help="tern's protocol log during the runs (default off; both = two tern variants)")
    ap.add_argument("--reuse", action="store_true", help="reuse connections (smtp-source -d)")
    ap.add_argument("--idle", type=int, default=10000, help="idle connections to open to tern (0 skips)")
    ap.add_argument("--idle-timeout", type=float, default=120, help="seconds allowed to open them")
    ap.add_argument("--quick", action="store_true", help="small counts for a smoke run")
    ap.add_argument("--tern", default=str(REPO / "build" / "tern"), help="tern binary (copied at start)")
    ap.add_argument("--workdir", default=None, help="parent of the temp folder (default: system temp)")
    ap.add_argument("--json", default=str(RESULTS), help=f"results file (default {RESULTS})")
    ap.add_argument("--no-cgroups", action="store_true", help="use /proc accounting instead of cgroups")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="first wait up to SECONDS until the machine is idle (under 10%% busy for 3 s)")
    ap.add_argument("--max-foreign", type=float, default=0.15, metavar="FRACTION",
                    help="a run during which other work used more than FRACTION of the machine is "
                         "measured again (default 0.15)")
    ap.add_argument("--retries", type=int, default=2, help="how many times a noisy run is measured again (default 2)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (for debugging)")
    args = ap.parse_args()

    if args.quick:
        args.messages = min(args.messages, 1000)
        args.repeat = 1
        args.warmup = min(args.warmup, 50)
        args.idle = min(args.idle, 1000)
    if args.latency_messages is None:
        args.latency_messages = max(1, args.messages // 4)
    try:
        sessions = sorted({int(x) for x in args.sessions.split(",") if x.strip()})
    except ValueError:
        ap.error("--sessions takes numbers such as 10,50")
    if any(s < 1 for s in sessions) or args.messages < 1 or args.repeat < 1:
        ap.error("sessions, messages and repeat must be positive")

    servers = []
    only = set(args.only.split(",")) if args.only else {"tern", "postfix", "sink"}
    bad = only - {"tern", "postfix", "sink"}
    if bad:
        ap.error(f"--only takes tern, postfix or sink, not {', '.join(sorted(bad))}")
    if "tern" in only:
        if args.protocol_log in ("off", "both"):
            servers.append("tern")
        if args.protocol_log in ("on", "both"):
            servers.append("tern+plog")
    if "postfix" in only:
        servers.append("postfix")
    if "sink" in only:
        servers.append("sink")

    for tool in (SMTP_SOURCE,) + ((SMTP_SINK,) if "sink" in servers else ()) + ((POSTFIX,) if "postfix" in servers else ()):
        if not os.access(tool, os.X_OK):
            log(f"bench: {tool} is missing (apt-get install postfix)")
            return 2
    if "postfix" in servers and os.geteuid() != 0:
        log("bench: a private Postfix instance must be started as root; run as root or use --only tern,sink")
        return 2
    tern_src = Path(args.tern)
    if any(s.startswith("tern") for s in servers) and not os.access(tern_src, os.X_OK):
        log(f"bench: {tern_src} not found; run `make build` first")
        return 2

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)

    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet)
    started = time.monotonic()
    top = Path(tempfile.mkdtemp(prefix="tern-bench-", dir=args.workdir))
    os.chmod(top, 0o755)
    if not args.keep:
        CLEANUP.push(f"temp folder {top}", lambda: shutil.rmtree(top, ignore_errors=True))
    else:
        log(f"bench: keeping {top}")

    runs: list[dict] = []
    idle = None
    try:
        tern_binary = top / "tern"
        if tern_src.exists():
            shutil.copy2(tern_src, tern_binary)   # build/ may be rebuilt while we run
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "git": run_text(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
            "git_dirty": bool(run_text(["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "app"])),
            "tern_version": run_text([str(tern_binary), "version"]) if tern_binary.exists() else None,
            "postfix_version": run_text([POSTCONF, "-d", "-h", "mail_version"]),
            "workdir": str(top), "workdir_device": os.stat(top).st_dev,
            "fsync_ms": fsync_probe(top), "loadavg_start": os.getloadavg(),
            "size": args.size, "repeat": args.repeat, "reuse": args.reuse, "servers": servers,
            "protocol_log": args.protocol_log, "max_foreign": args.max_foreign, "argv": sys.argv[1:], "json": args.json,
            "smtp_source": f"{SMTP_SOURCE} -l {args.size} -m N -s S -f {SENDER} -t {RECIPIENT} -M {HELO}"
                           + (" -d" if args.reuse else ""),
        }
        scenarios = []
        if args.latency_messages > 0:
            scenarios.append({"name": "1 session", "sessions": 1, "messages": args.latency_messages})
        for s in sessions:
            if s == 1 and args.latency_messages > 0:
                continue
            scenarios.append({"name": f"{s} sessions", "sessions": s,
                              "messages": args.messages if s > 1 else args.latency_messages})
        log(f"bench: {len(servers)} server(s) x {len(scenarios)} scenario(s) x {args.repeat} run(s); "
            f"work folder {top} (fsync {meta['fsync_ms']:.2f} ms)")

        for rep in range(args.repeat):
            for sc in scenarios:
                order = servers[rep % len(servers):] + servers[:rep % len(servers)]   # alternate who goes first
                for kind in order:
                    log(f"bench: run {rep + 1}/{args.repeat} {sc['name']:<12} {LABELS[kind]:<14} "
                        f"{sc['messages']} messages ...")
                    for attempt in range(args.retries + 1):
                        r = measure(kind, sc, args, top, tern_binary)
                        r["repeat"] = rep
                        r["attempt"] = attempt
                        runs.append(r)
                        log(f"bench:   {fmt(r.get('msgs_per_s'))} msgs/s, {fmt(r.get('latency_ms'), '.3f')} ms/msg, "
                            f"CPU {fmt(r.get('cpu_s'), '.2f')} s, wall {fmt(r.get('wall_s'), '.2f')} s, "
                            f"other work {fmt(r.get('foreign_cpu_s'), '.1f')} CPU s"
                            + (f"; ERRORS: {r['errors']}" if r["errors"] else ""))
                        if not noisy(r, args.max_foreign) or attempt == args.retries:
                            break
                        r["discarded"] = (f"other work used {r['foreign_cpu_s']:.1f} CPU s in "
                                          f"{r['wall_s']:.1f} s; measured again")
                        log(f"bench:   {r['discarded']}")
                        wait_quiet(min(args.wait_quiet or 30, 30))

        if args.idle > 0 and "tern" in only:
            log(f"bench: opening {args.idle} idle connections to tern ...")
            idle = idle_connections(args, top, tern_binary)
            log(f"bench:   tern VmRSS {fmt(idle.get('rss_idle_mb'))} MB with "
                f"{idle.get('connections_idle')} idle connections"
                + (f"; ERRORS: {idle['errors']}" if idle["errors"] else ""))

        summary = summarize(runs, scenarios, servers)
        tgt = targets(summary, idle)
        meta["duration_s"] = time.monotonic() - started
        meta["fsync_ms_end"] = fsync_probe(top)
        meta["loadavg_end"] = os.getloadavg()
        result = {"meta": meta, "scenarios": scenarios, "summary": summary, "targets": tgt,
                  "idle_connections": idle, "runs": runs}
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print_report(summary, idle, tgt, meta, runs)
        failed = any(r["errors"] for r in runs if not r.get("discarded")) or (idle is not None and idle["errors"])
        return 1 if failed else 0
    finally:
        CLEANUP.run_all()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("bench: interrupted; everything it started is stopped")
        sys.exit(130)
