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
import subprocess
import time
from pathlib import Path

from cleanup import BenchError
from load import RECIPIENT, record_injection, smtp_source_during, warm_up
from measure import Window, end_to_end, end_warmup, new_run
from server_tern import TernServer
from servers import Server, check_drained_after_run, check_drained_after_warmup, finish_server, make_server

LOCAL_SERVERS = ("tern", "tern+plog", "postfix")
POLL_S = 0.02                 # how often new/ is counted while waiting


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
    res, phase = new_run("local", kind, scenario, args)
    sessions, messages, warmup = res["sessions"], res["messages"], res["warmup"]
    srv: Server | None = None
    try:
        srv = make_server(kind, args, top, tern_binary, local=True)
        res["accounting"] = srv.acct.mode
        srv.start()
        phase("start")
        res["port"] = srv.port
        pid = srv.proc.pid if isinstance(srv, TernServer) else None
        maildir: Path = srv.maildir

        # Warm-up, which is also the check that the server delivers: all arrive, queue empties.
        warm_up(res, srv.port, warmup, sessions, args)
        t_w, n_w = wait_count(maildir, warmup, 30 + warmup / 50)
        if t_w is None:
            raise BenchError(f"warm-up: {n_w} of {warmup} messages in {maildir}/new within "
                             f"{30 + warmup / 50:.0f}s")
        check_drained_after_warmup(srv, res)
        end_warmup(phase)

        srv.begin_window()
        window = Window(srv.acct, pid)
        r, t0, (t_done, n_done), limit = smtp_source_during(
            srv.port, messages, sessions, args, RECIPIENT,
            lambda limit: wait_count(maildir, warmup + messages, limit))
        window.end()
        record_injection(res, r)
        if t_done is None:
            raise BenchError(f"{n_done - warmup} of {messages} messages in {maildir}/new within {limit:.0f}s")
        end_to_end(res, messages, t_done - t0, r["wall_s"], window.cpu_s)
        window.store(res, r["client_cpu_s"], srv.dir)
        phase("measured")

        # Everything delivered exactly once, nothing left behind.
        check_drained_after_run(srv, res)
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
        # The folder stays until the run's temp folder is removed at exit:
        # removing 20,000 files right before the next server's run would
        # slow its file creation (ext4 passes over recently deleted inodes).
        finish_server(srv, kind, res, True, phase)
    return res
