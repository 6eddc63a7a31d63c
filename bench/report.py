"""The results: medians per server and scenario, ratios, the issue's targets, tables.

summarize() and summarize_relay() (also used for the local scenario) pick the run with the median throughput of each
server in each scenario and compute tern/Postfix and tern/smtp-sink ratios (and, for
tern-pg, tern on PostgreSQL, the same and tern-pg/tern: PostgreSQL against RocksDB);
targets() judges the issue's targets on them; print_report() prints the tables
on stdout (run.py writes everything, every run included, to the JSON file).
"""

from __future__ import annotations

from measure import noisy

LABELS = {"tern": "tern", "tern+plog": "tern+protolog", "tern-pg": "tern-pg", "postfix": "postfix",
          "sink": "smtp-sink"}


def fmt(v, spec=".1f", none="-") -> str:
    return none if v is None else format(v, spec)


def median_run(runs: list[dict], key: str = "msgs_per_s") -> dict | None:
    good = [r for r in runs if r.get(key)]
    if not good:
        return runs[0] if runs else None
    good.sort(key=lambda r: r[key])
    return good[(len(good) - 1) // 2]


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def _runs_of(runs: list[dict], scenario: str, kind: str) -> list[dict]:
    return [r for r in runs if r["scenario"] == scenario and r["server"] == kind and not r.get("discarded")]


def summarize(runs: list[dict], scenarios: list[dict], servers: list[str]) -> dict:
    """Accept scenarios: msgs/s, latency and CPU per message of the median run."""
    summary: dict = {}
    for sc in scenarios:
        entry: dict = {"sessions": sc["sessions"], "messages": sc["messages"], "servers": {}, "ratios": {}}
        for kind in servers:
            mine = _runs_of(runs, sc["name"], kind)
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
                "parts": m.get("parts"), "postgres": m.get("postgres"),
            }
        s = entry["servers"]
        for t in [k for k in s if k.startswith("tern")]:
            for other in ("postfix", "sink") + (("tern",) if t == "tern-pg" else ()):
                if other in s:
                    entry["ratios"][f"{t}/{other}"] = {
                        "throughput": ratio(s[t]["msgs_per_s"], s[other]["msgs_per_s"]),
                        "latency": ratio(s[t]["latency_ms"], s[other]["latency_ms"]),
                        "cpu_per_msg": ratio(s[t]["cpu_ms_per_msg"], s[other]["cpu_ms_per_msg"]),
                    }
        summary[sc["name"]] = entry
    return summary


def summarize_relay(runs: list[dict], scenarios: list[dict], servers: list[str]) -> dict:
    """Relay scenarios: delivered msgs/s, injection rate and CPU per message of the median run."""
    summary: dict = {}
    for sc in scenarios:
        entry: dict = {"sessions": sc["sessions"], "messages": sc["messages"], "servers": {}, "ratios": {}}
        for kind in servers:
            mine = _runs_of(runs, sc["name"], kind)
            m = median_run(mine, "delivered_per_s")
            if m is None:
                continue
            entry["servers"][kind] = {
                "delivered_per_s": m.get("delivered_per_s"), "inject_per_s": m.get("inject_per_s"),
                "wall_s": m.get("wall_s"), "drain_after_inject_s": m.get("drain_after_inject_s"),
                "cpu_s": m.get("cpu_s"), "cpu_ms_per_msg": m.get("cpu_ms_per_msg"),
                "peak_cgroup_mb": m.get("peak_cgroup_mb"), "peak_anon_mb": m.get("peak_anon_mb"),
                "peak_rss_sum_mb": m.get("peak_rss_sum_mb"), "sink_sessions": m.get("sink_sessions"),
                "runs": len(mine), "errors": sum(len(r["errors"]) for r in mine),
                "foreign_cpu_s": m.get("foreign_cpu_s"), "threads_cpu": m.get("threads_cpu"),
                "delivered_per_s_all": [round(r.get("delivered_per_s") or 0, 1) for r in mine],
                "parts": m.get("parts"), "postgres": m.get("postgres"),
            }
        s = entry["servers"]
        for t in [k for k in s if k.startswith("tern")]:
            for other in ("postfix",) + (("tern",) if t == "tern-pg" else ()):
                if other in s:
                    entry["ratios"][f"{t}/{other}"] = {
                        "delivered": ratio(s[t]["delivered_per_s"], s[other]["delivered_per_s"]),
                        "inject": ratio(s[t]["inject_per_s"], s[other]["inject_per_s"]),
                        "cpu_per_msg": ratio(s[t]["cpu_ms_per_msg"], s[other]["cpu_ms_per_msg"]),
                    }
        summary[sc["name"]] = entry
    return summary


def targets(summary: dict, relay: dict, idle: dict | None, local: dict | None = None) -> list[dict]:
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
        rp = e["ratios"].get("tern-pg/postfix")
        if e["sessions"] > 1 and rp and rp["throughput"] is not None:
            add("target", f"{name}: tern-pg (PostgreSQL spool) msgs/s >= 2x Postfix", rp["throughput"],
                rp["throughput"] >= 2)
    for name, e in relay.items():
        rt = e["ratios"].get("tern/postfix")
        if rt and rt["delivered"] is not None:
            add("target", f"{name}: tern delivered msgs/s >= 2x Postfix", rt["delivered"], rt["delivered"] >= 2)
    for name, e in (local or {}).items():
        rt = e["ratios"].get("tern/postfix")
        if rt and rt["delivered"] is not None:
            add("target", f"{name}: tern delivered msgs/s >= 3x Postfix", rt["delivered"], rt["delivered"] >= 3)
        if rt and rt["inject"] is not None:
            add("target", f"{name}: tern accept msgs/s while delivering >= 3x Postfix", rt["inject"],
                rt["inject"] >= 3)
        t = e["servers"].get("tern")
        if t and t.get("cpu_ms_per_msg") is not None:
            add("target", f"{name}: tern CPU per delivered message <= 0.5 ms (ms)", t["cpu_ms_per_msg"],
                t["cpu_ms_per_msg"] <= 0.5)
    if idle and idle.get("rss_idle_mb") is not None:
        ok = idle.get("connections_idle") == idle["target"] and idle["rss_idle_mb"] < 256
        add("target", f"{idle['target']} idle connections: tern VmRSS < 256 MB (MB)", idle["rss_idle_mb"], ok)
    return out


def _memory(s: dict) -> str:
    return fmt(s["peak_anon_mb"] if s.get("peak_anon_mb") is not None else s.get("peak_rss_sum_mb"))


def print_accept(summary: dict) -> None:
    for name, e in summary.items():
        print("")
        print(f"== {name}: {e['sessions']} session(s), {e['messages']} messages ==")
        print(f"  {'server':<14}{'msgs/s':>10}{'ms/msg':>9}{'CPU s':>9}{'CPU ms/msg':>12}{'RSS MB':>9}"
              f"{'cgroup MB':>11}{'errors':>8}   all runs msgs/s")
        for kind, s in e["servers"].items():
            print(f"  {LABELS[kind]:<14}{fmt(s['msgs_per_s']):>10}{fmt(s['latency_ms'], '.3f'):>9}"
                  f"{fmt(s['cpu_s'], '.2f'):>9}{fmt(s['cpu_ms_per_msg'], '.3f'):>12}{_memory(s):>9}"
                  f"{fmt(s['peak_cgroup_mb']):>11}{s['errors']:>8}   {s['msgs_per_s_all']}")
        for key, r in e["ratios"].items():
            a, b = key.split("/")
            print(f"  {LABELS[a]}/{LABELS[b]}: throughput {fmt(r['throughput'], '.2f')}x, "
                  f"latency {fmt(r['latency'], '.2f')}x, CPU per message {fmt(r['cpu_per_msg'], '.2f')}x")
        print_postgres(e, "msgs_per_s")


def print_postgres(e: dict, rate_key: str) -> None:
    """tern-pg's PostgreSQL: its share of the CPU and memory in the row above, and what
    the database did in the window (write transactions = xids assigned, WAL flushes)."""
    s = e["servers"].get("tern-pg")
    if not s:
        return
    n = e["messages"]
    pg_part = (s.get("parts") or {}).get("postgres")
    tern_part = (s.get("parts") or {}).get("tern")
    if pg_part and tern_part:
        print(f"  tern-pg's CPU and memory above are tern + PostgreSQL: tern {tern_part['cpu_s']:.2f} s "
              f"({tern_part['cpu_s'] / n * 1000:.3f} ms/msg, RSS {_memory(tern_part)} MB), PostgreSQL "
              f"{pg_part['cpu_s']:.2f} s ({pg_part['cpu_s'] / n * 1000:.3f} ms/msg, RSS "
              f"{_memory(pg_part)} MB, cgroup {fmt(pg_part['peak_cgroup_mb'])} MB incl. shared_buffers "
              "touched)")
    pg = s.get("postgres")
    if not pg or not pg.get("write_xacts"):
        return
    rate = s.get(rate_key)
    secs = n / rate if rate else None
    x, sync = pg["write_xacts"], pg.get("wal_sync") or 0
    print(f"  PostgreSQL in the window: {x} write transactions ({fmt(x / secs if secs else None, '.0f')}/s, "
          f"{n / x:.2f} msgs each), {sync} WAL flushes ({fmt(sync / secs if secs else None, '.0f')}/s, "
          f"{fmt(n / sync if sync else None, '.2f')} msgs each, {fmt(pg.get('wal_sync_time_ms', 0) / sync if sync else None, '.2f')} ms each), "
          f"WAL {pg.get('wal_lsn_bytes', 0) / n / 1024:.1f} KB/msg, rows per msg: "
          f"{pg.get('tup_inserted', 0) / n:.1f} inserted, {pg.get('tup_updated', 0) / n:.1f} updated, "
          f"{pg.get('tup_deleted', 0) / n:.1f} deleted")
    for st in (pg.get("statements") or [])[:5]:
        print(f"    {st['calls'] / n:6.2f} calls/msg {st['total_ms']:9.1f} ms  {st['query'][:90]}")


def _print_end_to_end(results: dict, title: str, inject_head: str, inject_ratio: str, conns: bool) -> None:
    """The tables of a delivering scenario (relay, local): delivered and accepted rates,
    CPU, memory, the sessions to the sink (`conns`), tern's CPU by thread, the ratios."""
    for name, e in results.items():
        print("")
        print(f"== {name}, {e['messages']} messages: {title} ==")
        print(f"  {'server':<14}{'delivered/s':>12}{inject_head:>11}{'drain s':>9}{'CPU s':>8}{'CPU ms/msg':>12}"
              f"{'RSS MB':>8}{'cgroup MB':>11}" + (f"{'conns':>7}" if conns else "")
              + f"{'errors':>8}   all runs delivered/s")
        for kind, s in e["servers"].items():
            print(f"  {LABELS[kind]:<14}{fmt(s['delivered_per_s']):>12}{fmt(s['inject_per_s']):>11}"
                  f"{fmt(s['drain_after_inject_s'], '.2f'):>9}{fmt(s['cpu_s'], '.2f'):>8}"
                  f"{fmt(s['cpu_ms_per_msg'], '.3f'):>12}{_memory(s):>8}{fmt(s['peak_cgroup_mb']):>11}"
                  + (f"{fmt(s['sink_sessions'], 'd'):>7}" if conns else "")
                  + f"{s['errors']:>8}   {s['delivered_per_s_all']}")
        for kind, s in e["servers"].items():
            busy = [t for t in (s.get("threads_cpu") or []) if t["user_s"] + t["sys_s"] >= 0.01][:8]
            if busy:
                print(f"  {LABELS[kind]} CPU s by thread (#creation order user+sys): "
                      + ", ".join(f"#{t['thread']} {t['user_s']:.2f}+{t['sys_s']:.2f}" for t in busy))
        for key, r in e["ratios"].items():
            a, b = key.split("/")
            print(f"  {LABELS[a]}/{LABELS[b]}: delivered msgs/s {fmt(r['delivered'], '.2f')}x, "
                  f"{inject_ratio} {fmt(r['inject'], '.2f')}x, CPU per message {fmt(r['cpu_per_msg'], '.2f')}x")
        print_postgres(e, "delivered_per_s")


def print_relay(relay: dict) -> None:
    _print_end_to_end(relay, "client -> server -> its own smtp-sink", "injected/s", "injected msgs/s", True)


def print_local(local: dict) -> None:
    _print_end_to_end(local, "client -> server -> a local Maildir (fsync'd)", "accepted/s",
                      "accepted msgs/s while delivering", False)


def print_idle(idle: dict) -> None:
    print("")
    print(f"== {idle['target']} idle connections to tern ==")
    print(f"  banners read: {idle.get('connections_idle')} in {fmt(idle.get('open_seconds'), '.2f')} s; "
          f"failures {idle.get('failures')}")
    print(f"  tern VmRSS: before {fmt(idle.get('rss_before_mb'))} MB, idle {fmt(idle.get('rss_idle_mb'))} MB "
          f"({fmt(idle.get('rss_per_connection_kb'), '.2f')} KB/connection), after close "
          f"{fmt(idle.get('rss_after_close_mb'))} MB; cgroup usage {fmt(idle.get('cgroup_usage_mb'))} MB "
          f"(anon {fmt(idle.get('cgroup_anon_mb'))} MB); fds {idle.get('fds_idle')}")
    print(f"  latency of 100 messages (1 session) with them open: "
          f"{fmt(idle.get('latency_with_idle_ms'), '.3f')} ms/msg")


def print_report(summary: dict, relay: dict, idle: dict | None, tgt: list[dict], meta: dict,
                 runs: list[dict], local: dict | None = None) -> None:
    p = print
    p("")
    p(f"tern vs Postfix {meta['postfix_version']} vs smtp-sink — {meta['size']} B messages, "
      f"{meta['cpus']} CPUs, fsync {meta['fsync_ms']:.2f}/{meta['fsync_ms_end']:.2f} ms (start/end), "
      f"median of {meta['repeat']} run(s), "
      f"{'one message per connection' if not meta['reuse'] else 'connections reused (-d)'}")
    p("CPU = all processes of the server (cgroup cpuacct); RSS = peak anonymous memory of the server's "
      "cgroup; cgroup = memory.max_usage_in_bytes (includes the page cache of the queue files).")
    if meta.get("postgres_missing"):
        p("")
        p(f"*** tern-pg (tern with its queue in PostgreSQL) was NOT measured: {meta['postgres_missing']} ***")
    if "tern-pg" in meta["servers"] and meta.get("postgres_version"):
        p(f"tern-pg = tern with [spool] backend = \"postgres\" on a private {meta.get('postgres_version')} on "
          "this machine (fsync and synchronous_commit on, shared_buffers 256MB); its CPU and memory include "
          "PostgreSQL's server processes (each part listed below its table).")
    print_accept(summary)
    if relay:
        p("")
        p("Relay: delivered/s = messages / time from the start of smtp-source until the sink counted the last; "
          "drain s = how long delivery went on after injection ended; conns = SMTP sessions the server "
          "opened to the sink in the whole run (warm-up included).")
        print_relay(relay)
    if local:
        p("")
        p("Local: delivered/s = messages / time from the start of smtp-source until new/ of the Maildir held "
          "the last; accepted/s = messages / wall time of smtp-source (accepting while delivering); "
          "CPU ms/msg = the server's CPU in that window per delivered message.")
        print_local(local)
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
        print_idle(idle)
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
