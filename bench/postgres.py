"""A private PostgreSQL 15 for the tern-pg server (tern with [spool] backend = "postgres").

initdb runs once per benchmark (as the `postgres` user, via runuser) into the run's temp
folder; every tern-pg run copies that template into its own folder and starts a fresh
`postgres` on a free 127.0.0.1 port (fsync and synchronous_commit on, shared_buffers
256MB, its socket in its own folder: never the system cluster), in a cgroup of its own;
it is ready when a connection answers (polled with a deadline), then gets the role and
database tern uses. Its statistics (write transactions, WAL flushes, pg_stat_statements)
are read at the start of the measured window and after tern stopped. stop() shuts it
down (fast), and the cleanup does the same on errors and signals.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from accounting import Accounting
from cleanup import CLEANUP, BenchError, log
from servers import HOST, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
INITDB = PG_BIN / "initdb"
POSTGRES = PG_BIN / "postgres"
PSQL = PG_BIN / "psql"
RUNUSER = "/usr/sbin/runuser"
PG_USER = "postgres"
DB_NAME = "tern"
DB_ROLE = "tern"

# Appended to the template's postgresql.conf. The durability settings are PostgreSQL's
# defaults, written out so that a changed default cannot make the numbers look better.
PG_CONF = """
# bench/postgres.py: a private PostgreSQL for the tern-pg benchmark
listen_addresses = '127.0.0.1'
max_connections = 200
shared_buffers = 256MB
fsync = on
synchronous_commit = on
full_page_writes = on
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
track_wal_io_timing = on
logging_collector = off
log_min_messages = warning
"""

# One JSON object: the counters the window's deltas are taken from.
STATS_SQL = f"""
select json_build_object(
  'next_xid', pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
  'wal_lsn_bytes', (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint,
  'xact_commit', d.xact_commit, 'xact_rollback', d.xact_rollback,
  'tup_inserted', d.tup_inserted, 'tup_updated', d.tup_updated, 'tup_deleted', d.tup_deleted,
  'wal_records', w.wal_records, 'wal_fpi', w.wal_fpi, 'wal_bytes', w.wal_bytes::bigint,
  'wal_write', w.wal_write, 'wal_sync', w.wal_sync, 'wal_sync_time_ms', w.wal_sync_time)
from pg_stat_database d, pg_stat_wal w where d.datname = '{DB_NAME}'
"""

# The statements that took the database's time, since the window started.
STATEMENTS_SQL = f"""
select coalesce(json_agg(t), '[]') from (
  select calls, rows, round(total_exec_time::numeric, 1) as total_ms, wal_records,
         wal_bytes::bigint as wal_bytes,
         left(regexp_replace(query, '\\s+', ' ', 'g'), 160) as query
  from pg_stat_statements where dbid = (select oid from pg_database where datname = '{DB_NAME}')
  order by total_exec_time desc limit 10) t
"""


def available() -> str | None:
    """None when a private PostgreSQL 15 can be started here, else why not."""
    for tool in (INITDB, POSTGRES, PSQL, Path(RUNUSER)):
        if not os.access(tool, os.X_OK):
            return f"{tool} is missing (apt-get install postgresql-15)"
    try:
        import pwd
        pwd.getpwnam(PG_USER)
    except KeyError:
        return f"there is no user {PG_USER} (apt-get install postgresql-15)"
    if os.geteuid() != 0:
        return "a private PostgreSQL is started as the postgres user, which needs root"
    return None


def _as_postgres(cmd: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([RUNUSER, "-u", PG_USER, "--"] + cmd, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, **kw)


_template: Path | None = None


def template(top: Path) -> Path:
    """The initdb'ed data folder every instance is copied from (made once, under top)."""
    global _template
    if _template is not None:
        return _template
    base = top / "pg-template"
    base.mkdir()
    shutil.chown(base, PG_USER, PG_USER)
    os.chmod(base, 0o700)
    data = base / "data"
    t0 = time.monotonic()
    p = _as_postgres([str(INITDB), "-D", str(data), "-U", PG_USER, "-E", "UTF8", "--locale=C.UTF-8",
                      "--auth-local=peer", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions"],
                     cwd=base)
    if p.returncode != 0:
        raise BenchError(f"initdb failed ({p.returncode}): {(p.stdout + p.stderr).strip()[-1500:]}")
    with open(data / "postgresql.conf", "a") as f:
        f.write(PG_CONF)
    log(f"bench: PostgreSQL template made by initdb in {time.monotonic() - t0:.1f} s ({data})")
    _template = data
    return data


class PrivatePostgres:
    """One PostgreSQL instance in `folder` (made from the template), for one tern-pg run."""

    def __init__(self, top: Path, folder: Path, use_cgroups: bool, label: str) -> None:
        self.top = top
        self.dir = folder
        self.data = folder / "data"
        self.sock = folder / "run"
        self.port = 0
        self.password = secrets.token_hex(16)
        self.acct = Accounting(f"{label}-postgres", use_cgroups)
        self.acct.exe_prefixes = (str(PG_BIN) + "/", RUNUSER)
        self.proc: subprocess.Popen | None = None
        self._token = None
        self.log = folder / "postgres.log"
        self.start_s: float | None = None

    def conninfo(self) -> str:
        return (f"host={HOST} port={self.port} dbname={DB_NAME} user={DB_ROLE} password={self.password} "
                f"connect_timeout=10")

    def start(self) -> None:
        t0 = time.monotonic()
        self.dir.mkdir()
        shutil.chown(self.dir, PG_USER, PG_USER)
        os.chmod(self.dir, 0o700)
        # cp -a keeps owner and modes (the data folder must be the postgres user's, 0700).
        p = subprocess.run(["cp", "-a", str(template(self.top)), str(self.data)], capture_output=True, text=True)
        if p.returncode != 0:
            raise BenchError(f"copying the PostgreSQL template failed: {p.stderr.strip()}")
        self.sock.mkdir()
        shutil.chown(self.sock, PG_USER, PG_USER)
        last = ""
        for _attempt in range(3):                       # another process may take the free port first
            self.port = free_port()
            logf = open(self.log, "ab")
            self.proc = subprocess.Popen(
                [RUNUSER, "-u", PG_USER, "--", str(POSTGRES), "-D", str(self.data), "-p", str(self.port),
                 "-k", str(self.sock)],
                cwd=self.dir, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                preexec_fn=self.acct.join_current_process, start_new_session=True)
            logf.close()
            self.acct.root_pid = self.proc.pid
            self._token = CLEANUP.push(f"postgres in {self.dir}", self._kill)
            try:
                self._wait_ready(60)
                break
            except BenchError as e:
                last = str(e)
                self._kill()
                CLEANUP.pop(self._token)
                self._token = None
                self.proc = None
        else:
            raise BenchError(f"PostgreSQL did not start: {last}")
        self.psql(f"create role {DB_ROLE} login password '{self.password}'", db="postgres")
        self.psql(f"create database {DB_NAME} owner {DB_ROLE}", db="postgres")
        self.psql("create extension pg_stat_statements", db="postgres")
        self.start_s = round(time.monotonic() - t0, 3)

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-8:])
        except OSError:
            return ""

    def _wait_ready(self, timeout: float) -> None:
        """Polls a connection (select 1 over TCP, as tern connects) until it answers."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"postgres exited with {self.proc.returncode}: {self._log_tail()}")
            p = _as_postgres([str(PSQL), "-X", "-h", str(self.sock), "-p", str(self.port), "-d", "postgres",
                              "-Atc", "select 1"], timeout=max(1.0, deadline - time.monotonic()))
            if p.returncode == 0 and p.stdout.strip() == "1":
                return
            last = (p.stdout + p.stderr).strip()
            time.sleep(0.05)
        raise BenchError(f"PostgreSQL did not answer within {timeout:.0f}s (last: {last}); {self._log_tail()}")

    def psql(self, sql: str, db: str = DB_NAME, timeout: float = 60) -> str:
        p = _as_postgres([str(PSQL), "-X", "-v", "ON_ERROR_STOP=1", "-h", str(self.sock), "-p", str(self.port),
                          "-d", db, "-Atc", sql], timeout=timeout)
        if p.returncode != 0:
            raise BenchError(f"psql failed ({p.returncode}) on {sql.strip()[:80]!r}: {p.stderr.strip()}")
        return p.stdout.strip()

    def settle(self, timeout: float = 15) -> float:
        """Waits until each of tern's database sessions has been idle for over 10 s, at most
        `timeout` s: a PostgreSQL 15 backend that went idle within a second of its last
        statistics flush keeps its counters (pg_stat_database, pg_stat_wal) for 10 s
        (PGSTAT_IDLE_INTERVAL), so the warm-up's would land in the measured window.
        Polled through pg_stat_activity.state_change; returns the seconds waited."""
        t0 = time.monotonic()
        sql = (f"select coalesce(min(extract(epoch from now() - state_change)), 1e9) from pg_stat_activity "
               f"where datname = '{DB_NAME}' and usename = '{DB_ROLE}'")
        while time.monotonic() - t0 < timeout:
            idle_s = float(self.psql(sql, db="postgres"))
            if idle_s > 10.2:
                break
            time.sleep(min(0.5, max(0.05, 10.25 - idle_s)))
        return round(time.monotonic() - t0, 3)

    def window_start(self) -> None:
        """The counters at the start of the measured window (after settle()); pg_stat_statements
        from zero."""
        self.settle_s = self.settle()
        self.psql("select pg_stat_statements_reset()", db="postgres")
        self.stats0 = json.loads(self.psql(STATS_SQL, db="postgres"))
        self.t0 = time.monotonic()

    def window_result(self) -> dict:
        """Deltas since window_start(), read after tern stopped (its backends have then
        flushed their statistics): write transactions (xids), WAL bytes and flushes, rows,
        and the statements that took the time."""
        if not hasattr(self, "stats0"):
            return {}
        s1 = json.loads(self.psql(STATS_SQL, db="postgres"))
        d = {k: s1[k] - self.stats0[k] for k in s1 if isinstance(s1[k], (int, float))}
        d["write_xacts"] = d.pop("next_xid")
        d["settle_s"] = self.settle_s
        d["statements"] = json.loads(self.psql(STATEMENTS_SQL, db="postgres"))
        return d

    def _postmaster(self) -> tuple[int | None, int | None]:
        """(postmaster pid, SysV shared memory id) from postmaster.pid."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
            shm = int(lines[6].split()[1]) if len(lines) > 6 and len(lines[6].split()) > 1 else None
            return pid, shm
        except (OSError, ValueError, IndexError):
            return None, None

    def stop(self) -> dict:
        """Fast shutdown (SIGINT to the postmaster), bounded; then whatever is left is killed."""
        out: dict = {}
        if self.proc is None:
            self.acct.close()
            return out
        t0 = time.monotonic()
        pid, _ = self._postmaster()
        if pid and self.proc.poll() is None:
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            out["stop_error"] = "PostgreSQL did not stop within 30s of a fast shutdown; killed"
        out["stop_seconds"] = round(time.monotonic() - t0, 3)
        self._kill()
        out["leftover_processes"] = len(self.acct.kill_remaining())
        if self._token:
            CLEANUP.pop(self._token)
            self._token = None
        self.acct.close()
        self.proc = None
        return out

    def _kill(self) -> None:
        """On errors and signals: fast shutdown for up to 10 s, then SIGKILL of every process
        of the instance and removal of its SysV segment."""
        if self.proc is None:
            return
        pid, shm = self._postmaster()
        if self.proc.poll() is None and pid:
            try:
                os.kill(pid, signal.SIGINT)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        left = self.acct.kill_remaining()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        if left and shm is not None:
            subprocess.run(["ipcrm", "-m", str(shm)], capture_output=True)
