"""Scenario "local": end to end, client -> server -> a local Maildir (issue 9, point 5).

One run = a fresh server that delivers every message for sink@example.test to a
Maildir of its own, fsyncing both its queue and the delivered file: tern with its
normal configuration (delivery on, a [[mailbox]] with a maildir), Postfix with
`virtual` delivery (server_postfix.py). smtp-source injects 1 KB messages. A warm-up
of `--warmup` messages must all arrive in new/ and leave the queue empty; then N
messages at S sessions are timed from the start of smtp-source until new/ holds
warm-up + N files (delivered messages/s), with the accept rate meanwhile
(smtp-source's own wall time), the server's CPU per delivered message and peak
memory. Checks: exactly warm-up + N files, every message once (no Message-Id
twice), an empty queue at the end. Counts decide errors; timings never do.
Server folders are removed with the temp folder at exit, not between runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from cleanup import BenchError
from load import RECIPIENT, smtp_source
from measure import Phases, foreign_cpu, fsync_probe, machine_cpu, self_cpu_s, thread_cpu, thread_cpu_delta
from scenario_relay import wait_drained
from server_postfix import PostfixServer
from server_tern import TernServer
from servers import Server, finish_server

LOCAL_SERVERS = ("tern", "tern+plog", "postfix")
POLL_S = 0.02                 # how often new/ is counted while waiting


def make_local_server(kind: str, args, top: Path, tern_binary: Path) -> Server:
    if kind == "tern":
        return TernServer(tern_binary, top, False, not args.no_cgroups, "tern", local=True)
    if kind == "tern+plog":
        return TernServer(tern_binary, top, True, not args.no_cgroups, "tern+plog", local=True)
    if kind == "postfix":
        return PostfixServer(top, not args.no_cgroups, local=True)
    raise ValueError(kind)


def count_new(maildir: Path) -> int:
    """Files in the Maildir's new/ (0 before the server made it)."""
    try:
        with os.scandir(maildir / "new") as it:
            return sum(1 for _ in it)
    except FileNotFoundError:
        return 0


def wait_count(maildir: Path, want: int, timeout: float) -> tuple[float | None, int]:
    """Polls new/ until it holds `want` files (bounded); (time it did or None, last count)."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n = count_new(maildir)
        if n >= want:
            return time.monotonic(), n
        time.sleep(POLL_S)
    return None, n


def message_ids(maildir: Path) -> tuple[dict[str, int], int]:
    """Message-Id (smtp-source writes one per message) -> copies in new/; and how
    many files had none."""
    seen: dict[str, int] = {}
    without = 0
    with os.scandir(maildir / "new") as it:
        for entry in it:
            with open(entry.path, "rb") as f:
                head = f.read(4096)
            key = None
            for line in head.split(b"\n"):
                if not line.strip():
                    break                            # end of the header
                if line.lower().startswith(b"message-id:"):
                    key = line[11:].strip().decode("ascii", "replace")
                    break
            if key is None:
                without += 1
            else:
                seen[key] = seen.get(key, 0) + 1
    return seen, without


def measure_local(kind: str, scenario: dict, args, top: Path, tern_binary: Path) -> dict:
    sessions, messages = scenario["sessions"], scenario["messages"]
    warmup = min(args.warmup, messages)
    res: dict = {"benchmark": "local", "server": kind, "scenario": scenario["name"], "sessions": sessions,
                 "messages": messages, "size": args.size, "warmup": warmup, "errors": []}
    res["phases_s"] = {}
    phase = Phases(res["phases_s"])
    srv: Server | None = None
    try:
        srv = make_local_server(kind, args, top, tern_binary)
        res["accounting"] = srv.acct.mode
        srv.start()
        phase("start")
        res["port"] = srv.port
        pid = srv.proc.pid if isinstance(srv, TernServer) else None
        maildir: Path = srv.maildir

        # Warm-up, which is also the check that the server delivers: all arrive, queue empties.
        w = smtp_source(srv.port, warmup, sessions, args.size, args.reuse, RECIPIENT)
        if w["rc"] != 0:
            res["errors"].append(f"warm-up smtp-source rc={w['rc']}: {w['output']}")
        t_w, n_w = wait_count(maildir, warmup, 30 + warmup / 50)
        if t_w is None:
            raise BenchError(f"warm-up: {n_w} of {warmup} messages in {maildir}/new within "
                             f"{30 + warmup / 50:.0f}s")
        q0 = wait_drained(srv, 30)
        res["queued_before"] = q0
        if q0["count"]:
            res["errors"].append(f"after warm-up {q0['count']} messages still queued")
        phase("warmup")
        os.sync()                               # start from a clean page cache, outside the window
        phase("sync")

        srv.acct.reset_peak()
        srv.acct.start_sampling()
        m0, self0 = machine_cpu(), self_cpu_s()
        cpu0, us0 = srv.acct.cpu_ns(), srv.acct.user_sys_s()
        threads0 = thread_cpu(pid) if pid else {}
        r: dict = {}
        t0 = time.monotonic()
        injector = threading.Thread(target=lambda: r.update(smtp_source(
            srv.port, messages, sessions, args.size, args.reuse, RECIPIENT)), name="smtp-source")
        injector.start()
        limit = 120 + messages / 50.0
        t_done, n_done = wait_count(maildir, warmup + messages, limit)
        injector.join(timeout=limit + 60)       # smtp-source has its own time limit
        cpu1, us1 = srv.acct.cpu_ns(), srv.acct.user_sys_s()
        threads1 = thread_cpu(pid) if pid else {}
        m1, self1 = machine_cpu(), self_cpu_s()
        srv.acct.stop_sampling()
        if not r:
            raise BenchError("smtp-source did not finish")
        res["inject_wall_s"] = r["wall_s"]
        res["client_cpu_s"] = r["client_cpu_s"]
        res["cmd"], res["rc"], res["output"] = r["cmd"], r["rc"], r["output"]
        if r["rc"] != 0:
            res["errors"].append(f"smtp-source rc={r['rc']}: {r['output']}")
        elif r["output"]:
            res["errors"].append(f"smtp-source said: {r['output']}")
        if t_done is None:
            raise BenchError(f"{n_done - warmup} of {messages} messages in {maildir}/new within {limit:.0f}s")
        wall = t_done - t0
        cpu_s = (cpu1 - cpu0) / 1e9
        res["wall_s"] = wall
        res["delivered_per_s"] = messages / wall
        res["inject_per_s"] = messages / r["wall_s"] if r["wall_s"] > 0 else None
        res["drain_after_inject_s"] = round(max(0.0, wall - r["wall_s"]), 3)
        res["cpu_s"] = cpu_s
        res["cpu_ms_per_msg"] = cpu_s / messages * 1000
        if us0 and us1:
            res["cpu_user_s"] = round(us1[0] - us0[0], 3)
            res["cpu_sys_s"] = round(us1[1] - us0[1], 3)
        if threads1:
            res["threads_cpu"] = thread_cpu_delta(threads0, threads1)[:12]
        foreign_cpu(res, m0, m1, cpu_s + r["client_cpu_s"] + (self1 - self0))
        peak = srv.acct.peak_bytes()
        res["peak_cgroup_mb"] = peak / 2**20 if peak is not None else None
        res["peak_anon_mb"] = srv.acct.max_anon / 2**20 if srv.acct.max_anon else None
        res["peak_rss_sum_mb"] = srv.acct.max_rss_sum / 2**20
        res["fsync_ms_after"] = round(fsync_probe(srv.dir, 30), 3)   # the disk's state, for context
        phase("measured")

        # Everything delivered exactly once, nothing left behind.
        q1 = wait_drained(srv, 30)
        res["queued_after"] = q1
        if q1["count"]:
            res["errors"].append(f"{q1['count']} messages still queued after the run: {q1}")
        if isinstance(srv, PostfixServer):
            left = srv.postqueue()
            res["postqueue_after"] = len(left)
            if left:
                res["errors"].append(f"postqueue -j lists {len(left)} messages after the run")
        time.sleep(0.2)                          # a duplicate would arrive now
        total = count_new(maildir)
        res["delivered"] = total - warmup
        if total != warmup + messages:
            res["errors"].append(f"{maildir}/new holds {total} files, expected {warmup + messages}")
        ids, without = message_ids(maildir)
        twice = sum(1 for n in ids.values() if n > 1)
        res["distinct_message_ids"] = len(ids)
        if without:
            res["errors"].append(f"{without} delivered files have no Message-Id")
        if twice:
            res["errors"].append(f"{twice} messages were delivered more than once")
        if len(ids) + without != warmup + messages:
            res["errors"].append(f"{len(ids)} distinct messages delivered, expected {warmup + messages}")
        phase("maildir_check")
    except (BenchError, OSError, subprocess.SubprocessError, ValueError) as e:
        res["errors"].append(f"failed: {e}")
    finally:
        if srv is not None:
            # The folder stays until the run's temp folder is removed at exit:
            # removing 20,000 files right before the next server's run would
            # slow its file creation (ext4 passes over recently deleted inodes).
            finish_server(srv, kind, res, True, phase)
    return res
