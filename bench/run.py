#!/usr/bin/python3
"""tern and Postfix side by side (what `make bench` runs): command line and order of runs.

Four scenarios, each server started fresh in its own temp folder on one disk and
driven by Postfix's smtp-source (see bench/README.md):
  accept  how fast tern, tern-pg (its queue in a private PostgreSQL 15), Postfix
          (every message on hold) and smtp-sink (no queue: the upper bound)
          receive, sync and answer 250                       -> scenario_accept.py
  relay   end to end: tern, tern-pg or Postfix relays every message to an
          smtp-sink of its own; delivered messages/s         -> scenario_relay.py
  local   end to end: tern or Postfix (`virtual`) delivers every message to a
          local Maildir; delivered messages/s, accept rate   -> scenario_local.py
  idle    tern's memory with 10,000 idle connections         -> scenario_idle.py
Servers take turns (who goes first rotates), each scenario `--repeat` times; a run
disturbed by other work on the machine is measured again. The tables go to stdout
(report.py), progress to stderr, every run to bench/results/latest.json.

Python 3.11 standard library only. Loopback only. Everything it starts is stopped
and every temp folder removed on exit, also on errors and signals (cleanup.py).
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True   # keep bench/ free of __pycache__

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from cleanup import CLEANUP, log, stop_on_signals  # noqa: E402
from load import HELO, RECIPIENT, RELAY_RECIPIENT, SENDER  # noqa: E402
from measure import fsync_probe, noisy, run_text, wait_quiet  # noqa: E402
from postgres import available as postgres_available  # noqa: E402
from report import LABELS, fmt, print_report, summarize, summarize_relay, targets  # noqa: E402
from scenario_accept import measure_accept  # noqa: E402
from scenario_idle import idle_connections  # noqa: E402
from scenario_local import LOCAL_SERVERS, measure_local  # noqa: E402
from scenario_relay import RELAY_SERVERS, measure_relay  # noqa: E402
from servers import POSTCONF, POSTFIX, SMTP_SINK, SMTP_SOURCE  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "latest.json"
SCENARIOS = ("accept", "relay", "local", "idle")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="tern vs Postfix vs smtp-sink with smtp-source (see bench/README.md)")
    ap.add_argument("--messages", type=int, default=20000, help="messages per concurrent accept run (default 20000)")
    ap.add_argument("--latency-messages", type=int, default=None,
                    help="messages for the single-session latency run (default messages/4; 0 skips it)")
    ap.add_argument("--sessions", default="10,50", help="concurrent sessions, comma-separated (default 10,50)")
    ap.add_argument("--relay-messages", type=int, default=10000, help="messages per relay run (default 10000)")
    ap.add_argument("--relay-sessions", default="10,50",
                    help="sessions of the relay runs, comma-separated (default 10,50)")
    ap.add_argument("--local-sessions", default="10",
                    help="sessions of the local delivery runs (their messages: --messages), comma-separated "
                         "(default 10)")
    ap.add_argument("--size", type=int, default=1024, help="message payload bytes, smtp-source -l (default 1024)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per server and scenario, median reported (default 3)")
    ap.add_argument("--warmup", type=int, default=200, help="unmeasured messages before each run (default 200)")
    ap.add_argument("--only", default=None,
                    help="tern|tern-pg|postfix|sink (comma-separated list allowed; tern-pg = tern on a private "
                         "PostgreSQL 15, included by default when it is installed)")
    ap.add_argument("--only-scenario", default=None, metavar="LIST",
                    help="accept|relay|local|idle (comma-separated list allowed; default all four)")
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
        args.relay_messages = min(args.relay_messages, 1000)
        args.repeat = 1
        args.warmup = min(args.warmup, 50)
        args.idle = min(args.idle, 1000)
    if args.latency_messages is None:
        args.latency_messages = max(1, args.messages // 4)
    try:
        args.session_list = sorted({int(x) for x in args.sessions.split(",") if x.strip()})
        args.relay_session_list = sorted({int(x) for x in args.relay_sessions.split(",") if x.strip()})
        args.local_session_list = sorted({int(x) for x in args.local_sessions.split(",") if x.strip()})
    except ValueError:
        ap.error("--sessions, --relay-sessions and --local-sessions take numbers such as 10,50")
    if (any(s < 1 for s in args.session_list + args.relay_session_list + args.local_session_list) or args.messages < 1
            or args.relay_messages < 1 or args.repeat < 1):
        ap.error("sessions, messages and repeat must be positive")
    # tern-pg needs PostgreSQL 15: by default it is left out, loudly, when it is missing;
    # asked for by --only, its absence is an error.
    args.postgres_missing = postgres_available()
    if args.only:
        args.only_set = set(args.only.split(","))
        if "tern-pg" in args.only_set and args.postgres_missing:
            ap.error(f"--only tern-pg: {args.postgres_missing}")
    else:
        args.only_set = {"tern", "postfix", "sink"} | ({"tern-pg"} if not args.postgres_missing else set())
    bad = args.only_set - {"tern", "tern-pg", "postfix", "sink"}
    if bad:
        ap.error(f"--only takes tern, tern-pg, postfix or sink, not {', '.join(sorted(bad))}")
    args.scenario_set = set(args.only_scenario.split(",")) if args.only_scenario else set(SCENARIOS)
    bad = args.scenario_set - set(SCENARIOS)
    if bad:
        ap.error(f"--only-scenario takes accept, relay, local or idle, not {', '.join(sorted(bad))}")
    return args


def server_list(args) -> list[str]:
    servers = []
    if "tern" in args.only_set:
        if args.protocol_log in ("off", "both"):
            servers.append("tern")
        if args.protocol_log in ("on", "both"):
            servers.append("tern+plog")
    if "tern-pg" in args.only_set:
        servers.append("tern-pg")
    if "postfix" in args.only_set:
        servers.append("postfix")
    if "sink" in args.only_set:
        servers.append("sink")
    return servers


def scenario_list(args, servers: list[str]) -> list[dict]:
    """Every scenario with the servers that take part and the function that measures a run."""
    out = []
    if "accept" in args.scenario_set:
        if args.latency_messages > 0:
            out.append({"benchmark": "accept", "name": "1 session", "sessions": 1,
                        "messages": args.latency_messages})
        for s in args.session_list:
            if s == 1 and args.latency_messages > 0:
                continue
            out.append({"benchmark": "accept", "name": f"{s} sessions", "sessions": s,
                        "messages": args.messages if s > 1 else args.latency_messages})
    relay_servers = [k for k in servers if k in RELAY_SERVERS]
    if "relay" in args.scenario_set and relay_servers:
        for s in args.relay_session_list:
            out.append({"benchmark": "relay", "name": f"relay, {s} session{'s' if s > 1 else ''}",
                        "sessions": s, "messages": args.relay_messages})
    local_servers = [k for k in servers if k in LOCAL_SERVERS]
    if "local" in args.scenario_set and local_servers:
        for s in args.local_session_list:
            out.append({"benchmark": "local", "name": f"local, {s} session{'s' if s > 1 else ''}",
                        "sessions": s, "messages": args.messages})
    for sc in out:
        sc["servers"] = {"accept": servers, "relay": relay_servers, "local": local_servers}[sc["benchmark"]]
    return out


def copy_tern(src: Path, dest: Path) -> None:
    """Copies the binary (build/ may be rebuilt while we run) and checks the copy runs:
    a copy taken while the linker writes it is retried for up to 60 s."""
    deadline = time.monotonic() + 60
    while True:
        shutil.copy2(src, dest)
        os.chmod(dest, 0o755)
        p = subprocess.run([str(dest), "version"], stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if p.returncode == 0 or time.monotonic() > deadline:
            return
        log(f"bench: {src} does not run yet (being rebuilt?); trying again")
        time.sleep(2)


def run_with_retries(sc: dict, kind: str, rep: int, args, top: Path, tern_binary: Path, runs: list[dict]) -> None:
    measure = {"accept": measure_accept, "relay": measure_relay, "local": measure_local}[sc["benchmark"]]
    for attempt in range(args.retries + 1):
        r = measure(kind, sc, args, top, tern_binary)
        r["repeat"] = rep
        r["attempt"] = attempt
        runs.append(r)
        if sc["benchmark"] == "accept":
            log(f"bench:   {fmt(r.get('msgs_per_s'))} msgs/s, {fmt(r.get('latency_ms'), '.3f')} ms/msg, "
                f"CPU {fmt(r.get('cpu_s'), '.2f')} s, wall {fmt(r.get('wall_s'), '.2f')} s, "
                f"other work {fmt(r.get('foreign_cpu_s'), '.1f')} CPU s"
                + (f"; ERRORS: {r['errors']}" if r["errors"] else ""))
        else:
            log(f"bench:   {fmt(r.get('delivered_per_s'))} delivered msgs/s, {fmt(r.get('inject_per_s'))} "
                f"injected msgs/s, CPU {fmt(r.get('cpu_ms_per_msg'), '.3f')} ms/msg, CPU {fmt(r.get('cpu_s'), '.2f')} s, wall {fmt(r.get('wall_s'), '.2f')} s, "
                f"other work {fmt(r.get('foreign_cpu_s'), '.1f')} CPU s"
                + (f"; ERRORS: {r['errors']}" if r["errors"] else ""))
        if not noisy(r, args.max_foreign) or attempt == args.retries:
            return
        r["discarded"] = f"other work used {r['foreign_cpu_s']:.1f} CPU s in {r['wall_s']:.1f} s; measured again"
        log(f"bench:   {r['discarded']}")
        wait_quiet(min(args.wait_quiet or 30, 30))


def main() -> int:
    args = parse_args()
    servers = server_list(args)
    scenarios = scenario_list(args, servers)
    used = {k for sc in scenarios for k in sc["servers"]}
    relaying = any(sc["benchmark"] == "relay" for sc in scenarios)
    idle_wanted = args.idle > 0 and "tern" in args.only_set and "idle" in args.scenario_set

    need = [SMTP_SOURCE] + ([SMTP_SINK] if "sink" in used or relaying else []) + ([POSTFIX] if "postfix" in used else [])
    for tool in need:
        if not os.access(tool, os.X_OK):
            log(f"bench: {tool} is missing (apt-get install postfix)")
            return 2
    if "postfix" in used and os.geteuid() != 0:
        log("bench: a private Postfix instance must be started as root; run as root or use --only tern,sink")
        return 2
    tern_src = Path(args.tern)
    if (any(k.startswith("tern") for k in used) or idle_wanted) and not os.access(tern_src, os.X_OK):
        log(f"bench: {tern_src} not found; run `make build` first")
        return 2

    if args.postgres_missing and not args.only:
        log("")
        log(f"bench: *** tern-pg (tern on PostgreSQL) is NOT measured: {args.postgres_missing} ***")
        log("")

    stop_on_signals()
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
            copy_tern(tern_src, tern_binary)
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "git": run_text(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
            "git_dirty": bool(run_text(["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "app"])),
            "tern_version": run_text([str(tern_binary), "version"]) if tern_binary.exists() else None,
            "postfix_version": run_text([POSTCONF, "-d", "-h", "mail_version"]),
            "postgres_version": (run_text(["/usr/lib/postgresql/15/bin/postgres", "--version"])
                                 if "tern-pg" in used else None),
            "postgres_missing": args.postgres_missing if not args.only else None,
            "workdir": str(top), "workdir_device": os.stat(top).st_dev,
            "fsync_ms": fsync_probe(top), "loadavg_start": os.getloadavg(),
            "size": args.size, "repeat": args.repeat, "reuse": args.reuse, "servers": servers,
            "protocol_log": args.protocol_log, "max_foreign": args.max_foreign, "argv": sys.argv[1:], "json": args.json,
            "smtp_source": f"{SMTP_SOURCE} -l {args.size} -m N -s S -f {SENDER} -t {RECIPIENT} -M {HELO}"
                           + (" -d" if args.reuse else ""),
            "smtp_source_relay": f"{SMTP_SOURCE} -l {args.size} -m N -s S -f {SENDER} -t {RELAY_RECIPIENT} "
                                 f"-M {HELO}" + (" -d" if args.reuse else ""),
        }
        n_runs = sum(len(sc["servers"]) for sc in scenarios) * args.repeat
        log(f"bench: {n_runs} run(s) in {len(scenarios)} scenario(s) x {args.repeat} repeat(s)"
            f"{' + idle connections' if idle_wanted else ''}; work folder {top} (fsync {meta['fsync_ms']:.2f} ms)")

        for rep in range(args.repeat):
            for sc in scenarios:
                kinds = sc["servers"]
                order = kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]   # alternate who goes first
                for kind in order:
                    log(f"bench: run {rep + 1}/{args.repeat} {sc['name']:<17} {LABELS[kind]:<14} "
                        f"{sc['messages']} messages ...")
                    run_with_retries(sc, kind, rep, args, top, tern_binary, runs)

        if idle_wanted:
            log(f"bench: opening {args.idle} idle connections to tern ...")
            idle = idle_connections(args, top, tern_binary)
            log(f"bench:   tern VmRSS {fmt(idle.get('rss_idle_mb'))} MB with "
                f"{idle.get('connections_idle')} idle connections"
                + (f"; ERRORS: {idle['errors']}" if idle["errors"] else ""))

        accept_sc = [sc for sc in scenarios if sc["benchmark"] == "accept"]
        relay_sc = [sc for sc in scenarios if sc["benchmark"] == "relay"]
        local_sc = [sc for sc in scenarios if sc["benchmark"] == "local"]
        summary = summarize([r for r in runs if r["benchmark"] == "accept"], accept_sc, servers)
        relay = summarize_relay([r for r in runs if r["benchmark"] == "relay"], relay_sc, servers)
        local = summarize_relay([r for r in runs if r["benchmark"] == "local"], local_sc, servers)
        tgt = targets(summary, relay, idle, local)
        meta["duration_s"] = time.monotonic() - started
        meta["fsync_ms_end"] = fsync_probe(top)
        meta["loadavg_end"] = os.getloadavg()
        result = {"meta": meta, "scenarios": scenarios, "summary": summary, "relay_summary": relay,
                  "local_summary": local, "targets": tgt, "idle_connections": idle, "runs": runs}
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print_report(summary, relay, idle, tgt, meta, runs, local)
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
