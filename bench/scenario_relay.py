"""Scenario "relay": end to end, client -> server -> smtp-sink (issue 4).

One run = a fresh counting smtp-sink on its own port (server_sink.py) and a fresh
server relaying everything to it: tern with delivery on and a [[route]] "*" to the
sink, or Postfix with relayhost = [127.0.0.1]:<sink port> and default delivery
concurrency. smtp-source injects 1 KB messages for sink@relay.test (not a domain of
the server). A warm-up of `--warmup` messages must all arrive and leave the queue
empty; then N messages at S sessions are timed from the start of smtp-source until
the sink has counted all N (delivered messages/s), with the injection rate, the
server's CPU and peak memory over that window, and tern's CPU per thread. At the
end the sink must have exactly warm-up + N messages and the server's queue must be
empty (`tern queue list --json` is [], `postqueue -j` prints nothing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from cleanup import BenchError
from load import RELAY_RECIPIENT, smtp_source
from measure import Phases, foreign_cpu, fsync_probe, machine_cpu, self_cpu_s, thread_cpu, thread_cpu_delta
from server_postfix import PostfixServer
from server_sink import SinkServer
from server_tern import TernServer
from servers import Server, finish_server

RELAY_SERVERS = ("tern", "tern+plog", "postfix")


def make_relay_server(kind: str, args, top: Path, tern_binary: Path, sink_port: int) -> Server:
    if kind == "tern":
        return TernServer(tern_binary, top, False, not args.no_cgroups, "tern", relay_to=sink_port)
    if kind == "tern+plog":
        return TernServer(tern_binary, top, True, not args.no_cgroups, "tern+plog", relay_to=sink_port)
    if kind == "postfix":
        return PostfixServer(top, not args.no_cgroups, relay_to=sink_port)
    raise ValueError(kind)


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


def measure_relay(kind: str, scenario: dict, args, top: Path, tern_binary: Path) -> dict:
    sessions, messages = scenario["sessions"], scenario["messages"]
    warmup = min(args.warmup, messages)
    res: dict = {"benchmark": "relay", "server": kind, "scenario": scenario["name"], "sessions": sessions,
                 "messages": messages, "size": args.size, "warmup": warmup, "errors": []}
    res["phases_s"] = {}
    phase = Phases(res["phases_s"])
    sink = SinkServer(top, not args.no_cgroups, counting=True, label=f"sink-for-{kind}")
    srv: Server | None = None
    try:
        sink.start()
        srv = make_relay_server(kind, args, top, tern_binary, sink.port)
        res["accounting"] = srv.acct.mode
        srv.start()
        phase("start")
        res["port"], res["sink_port"] = srv.port, sink.port
        pid = srv.proc.pid if isinstance(srv, TernServer) else None

        # Warm-up, which is also the check that the server relays: all arrive, queue empties.
        sink.expect(warmup)
        w = smtp_source(srv.port, warmup, sessions, args.size, args.reuse, RELAY_RECIPIENT)
        if w["rc"] != 0:
            res["errors"].append(f"warm-up smtp-source rc={w['rc']}: {w['output']}")
        if sink.wait(30 + warmup / 50) is None:
            raise BenchError(f"warm-up: the sink got {sink.messages} of {warmup} messages within "
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
        cpu0, us0, sink0 = srv.acct.cpu_ns(), srv.acct.user_sys_s(), sink.acct.cpu_ns()
        threads0 = thread_cpu(pid) if pid else {}
        sink.expect(warmup + messages)
        r: dict = {}
        t0 = time.monotonic()
        injector = threading.Thread(target=lambda: r.update(smtp_source(
            srv.port, messages, sessions, args.size, args.reuse, RELAY_RECIPIENT)), name="smtp-source")
        injector.start()
        limit = 120 + messages / 50.0
        t_done = sink.wait(limit)
        injector.join(timeout=limit + 60)       # smtp-source has its own time limit
        cpu1, us1, sink1 = srv.acct.cpu_ns(), srv.acct.user_sys_s(), sink.acct.cpu_ns()
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
            raise BenchError(f"the sink got {sink.messages - warmup} of {messages} messages within {limit:.0f}s")
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
        res["sink_cpu_s"] = round((sink1 - sink0) / 1e9, 3)
        if threads1:
            res["threads_cpu"] = thread_cpu_delta(threads0, threads1)[:12]
        foreign_cpu(res, m0, m1, cpu_s + res["sink_cpu_s"] + r["client_cpu_s"] + (self1 - self0))
        peak = srv.acct.peak_bytes()
        res["peak_cgroup_mb"] = peak / 2**20 if peak is not None else None
        res["peak_anon_mb"] = srv.acct.max_anon / 2**20 if srv.acct.max_anon else None
        res["peak_rss_sum_mb"] = srv.acct.max_rss_sum / 2**20
        res["fsync_ms_after"] = round(fsync_probe(srv.dir, 30), 3)   # the disk's state, for context
        phase("measured")

        # Everything delivered once, nothing left behind.
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
        res["delivered"] = sink.messages - warmup
        if res["delivered"] != messages:
            res["errors"].append(f"the sink got {res['delivered']} messages, expected {messages}")
        phase("queue_check")
    except (BenchError, OSError, subprocess.SubprocessError, ValueError) as e:
        res["errors"].append(f"failed: {e}")
    finally:
        if srv is not None:
            finish_server(srv, kind, res, args.keep, phase)
        time.sleep(0.1)                          # the sink counts the sessions the stop closed
        # Sessions the server opened to the sink, warm-up included (less our banner probe).
        res["sink_sessions"] = max(0, sink.sessions - 1)
        try:
            sink.stop()
        except Exception as e:  # noqa: BLE001 - report and continue
            res["errors"].append(f"sink stop failed: {e}")
        if sink.output:
            res["sink_messages"] = sink.output[:10]
        if not args.keep:
            shutil.rmtree(sink.dir, ignore_errors=True)
    return res
