"""Scenario "accept": how fast a server receives, syncs and answers 250.

One run = a fresh server (tern with delivery off, Postfix putting everything on
hold, or smtp-sink), a warm-up of `--warmup` messages that is also the check that
it accepts and queues mail, then smtp-source with N messages at S sessions, timed;
then the queue must have grown by exactly N. Measures msgs/s, ms per message per
session, the server's CPU and peak memory (accounting.py), and the CPU other work
took meanwhile (measure.foreign_cpu).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cleanup import BenchError
from load import smtp_source
from measure import Phases, foreign_cpu, fsync_probe, machine_cpu, nofile_limit, self_cpu_s
from server_postfix import PostfixServer
from server_sink import SinkServer
from server_tern import TernServer
from servers import Server, finish_server


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


def measure_accept(kind: str, scenario: dict, args, top: Path, tern_binary: Path) -> dict:
    sessions, messages = scenario["sessions"], scenario["messages"]
    warmup = min(args.warmup, messages)
    res: dict = {"benchmark": "accept", "server": kind, "scenario": scenario["name"], "sessions": sessions,
                 "messages": messages, "size": args.size, "warmup": warmup, "errors": []}
    srv = make_server(kind, args, top, tern_binary)
    res["accounting"] = srv.acct.mode
    res["phases_s"] = {}
    phase = Phases(res["phases_s"])

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
        foreign_cpu(res, m0, m1, (cpu1 - cpu0) / 1e9 + r["client_cpu_s"] + (self1 - self0))
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
        finish_server(srv, kind, res, args.keep, phase)
    return res
