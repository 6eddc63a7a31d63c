"""Scenario "idle": how much memory tern needs for 10,000 idle connections.

A fresh tern; the client raises its own RLIMIT_NOFILE, opens the connections and
reads every banner (load.open_idle), leaves them idle for a second, then reads
tern's VmRSS/VmHWM, its cgroup usage and its open descriptors, sends 100 messages
through one more session to see it still answers, closes all, and checks that tern
lets go of the descriptors.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import time
from pathlib import Path

from cleanup import BenchError
from load import open_idle, smtp_source
from measure import nofile_limit, proc_status
from server_tern import TernServer


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

        t0 = time.monotonic()
        idle, failures = open_idle(srv.port, n, args.idle_timeout, socks)
        res["open_seconds"] = round(time.monotonic() - t0, 3)
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
