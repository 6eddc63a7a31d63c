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

import shutil
import subprocess
import time
from pathlib import Path

from cleanup import BenchError
from load import RELAY_RECIPIENT, record_injection, smtp_source_during, warm_up
from measure import Window, end_to_end, end_warmup, new_run
from server_sink import SinkServer
from server_tern import TernServer
from servers import Server, check_drained_after_run, check_drained_after_warmup, finish_server, make_server

RELAY_SERVERS = ("tern", "tern+plog", "tern-pg", "postfix")


def measure_relay(kind: str, scenario: dict, args, top: Path, tern_binary: Path) -> dict:
    res, phase = new_run("relay", kind, scenario, args)
    sessions, messages, warmup = res["sessions"], res["messages"], res["warmup"]
    sink = SinkServer(top, not args.no_cgroups, counting=True, label=f"sink-for-{kind}")
    srv: Server | None = None
    try:
        sink.start()
        srv = make_server(kind, args, top, tern_binary, relay_to=sink.port)
        res["accounting"] = srv.acct.mode
        srv.start()
        phase("start")
        res["port"], res["sink_port"] = srv.port, sink.port
        pid = srv.proc.pid if isinstance(srv, TernServer) else None

        # Warm-up, which is also the check that the server relays: all arrive, queue empties.
        sink.expect(warmup)
        warm_up(res, srv.port, warmup, sessions, args, RELAY_RECIPIENT)
        if sink.wait(30 + warmup / 50) is None:
            raise BenchError(f"warm-up: the sink got {sink.messages} of {warmup} messages within "
                             f"{30 + warmup / 50:.0f}s")
        check_drained_after_warmup(srv, res)
        end_warmup(phase)

        srv.begin_window()
        window = Window(srv.acct, pid)
        sink0 = sink.acct.cpu_ns()
        sink.expect(warmup + messages)
        r, t0, t_done, limit = smtp_source_during(srv.port, messages, sessions, args, RELAY_RECIPIENT, sink.wait)
        sink1 = sink.acct.cpu_ns()
        window.end()
        record_injection(res, r)
        if t_done is None:
            raise BenchError(f"the sink got {sink.messages - warmup} of {messages} messages within {limit:.0f}s")
        end_to_end(res, messages, t_done - t0, r["wall_s"], window.cpu_s)
        res["sink_cpu_s"] = round((sink1 - sink0) / 1e9, 3)
        window.store(res, res["sink_cpu_s"] + r["client_cpu_s"], srv.dir)
        phase("measured")

        # Everything delivered once, nothing left behind.
        check_drained_after_run(srv, res)
        time.sleep(0.2)                          # a duplicate would arrive now
        res["delivered"] = sink.messages - warmup
        if res["delivered"] != messages:
            res["errors"].append(f"the sink got {res['delivered']} messages, expected {messages}")
        phase("queue_check")
    except (BenchError, OSError, subprocess.SubprocessError, ValueError) as e:
        res["errors"].append(f"failed: {e}")
    finally:
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
