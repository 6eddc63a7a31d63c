"""Scenario "accept": how fast a server receives, syncs and answers 250.

One run = a fresh server (tern with delivery off, Postfix putting everything on
hold, or smtp-sink), a warm-up of `--warmup` messages that is also the check that
it accepts and queues mail, then smtp-source with N messages at S sessions, timed;
then the queue must have grown by exactly N. Measures msgs/s, ms per message per
session, the server's CPU and peak memory (accounting.py), and the CPU other work
took meanwhile (measure.foreign_cpu).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from cleanup import BenchError
from load import smtp_source, smtp_source_errors, warm_up
from measure import Window, end_warmup, new_run, nofile_limit
from server_tern import TernServer
from servers import finish_server, make_server


def measure_accept(kind: str, scenario: dict, args, top: Path, tern_binary: Path) -> dict:
    res, phase = new_run("accept", kind, scenario, args)
    sessions, messages, warmup = res["sessions"], res["messages"], res["warmup"]
    srv = make_server(kind, args, top, tern_binary)
    res["accounting"] = srv.acct.mode

    try:
        srv.start()
        phase("start")
        res["port"] = srv.port
        if isinstance(srv, TernServer):
            res["ready"] = srv.ready_line
            res["nofile_limit"] = nofile_limit(srv.proc.pid)
        # Warm-up, which is also the check that the server accepts and queues mail.
        warm_up(res, srv.port, warmup, sessions, args)
        q0 = srv.queued()
        if q0 is not None:
            res["queued_before"] = q0
            if q0["count"] != warmup:
                res["errors"].append(f"after warm-up {q0['count']} messages queued, expected {warmup}")
        end_warmup(phase)
        srv.begin_window()
        window = Window(srv.acct)
        r = smtp_source(srv.port, messages, sessions, args.size, args.reuse)
        window.end()
        window.store(res, r["client_cpu_s"], srv.dir)
        res.update(r)
        smtp_source_errors(res, r)
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
        cpu_s = window.cpu_s
        res["msgs_per_s"] = accepted / wall if wall > 0 else 0.0
        # Mean time per message per session (Little's law); for -s 1 it is the latency.
        res["latency_ms"] = wall * sessions / accepted * 1000 if accepted else None
        res["cpu_s"] = cpu_s
        res["cpu_ms_per_msg"] = cpu_s / accepted * 1000 if accepted else None
    except (BenchError, OSError, subprocess.SubprocessError, ValueError) as e:
        res["errors"].append(f"failed: {e}")
    finally:
        finish_server(srv, kind, res, args.keep, phase)
    return res
