"""A private PostgreSQL 15 for tern's shared-spool tests: a cluster made with
initdb in its own temp folder, run as the `postgres` user on a free 127.0.0.1
port (never the system cluster), with a database and role `tern`; a
synchronous standby made with pg_basebackup -R, and its promotion.

Nothing here sleeps to synchronise: pg_ctl -w waits for the server, and
every other wait polls a condition (pg_isready, a query) up to a deadline.

Use the `pg` fixture (import it into the test module) or PgCluster directly.
"""
import os
import pathlib
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

PG_BIN = pathlib.Path(os.environ.get("TERN_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"


def missing():
    """Why these tests cannot run here, or None."""
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL 15 is not installed ({PG_BIN}/initdb): run scripts/install-deps.sh"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return f"the user {PG_USER} does not exist: run scripts/install-deps.sh"
    return None


def _as_pg(cmd):
    """cmd run as the postgres user when the tests run as root (initdb refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER, "--", *cmd]
    return cmd


def _run(cmd, timeout=60, check=True):
    return subprocess.run(_as_pg(cmd), capture_output=True, text=True, timeout=timeout, check=check)


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until(what, condition, timeout):
    """Polls condition() until it is true; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"PostgreSQL: {what} within {timeout} s")
        time.sleep(0.05)


class PgCluster:
    """One PostgreSQL server in folder/data on 127.0.0.1:port.

    conninfo: the libpq string tern uses (database dbname, role user).
    """

    dbname = "tern"
    user = "tern"

    def __init__(self, folder, port=None):
        self.folder = pathlib.Path(folder)
        self.data = self.folder / "data"
        self.port = port or _free_port()
        self.log = self.folder / "postgres.log"

    # --- setup ---------------------------------------------------------
    @classmethod
    def create(cls):
        """A new cluster, started, with the role and database tern."""
        folder = pathlib.Path(tempfile.mkdtemp(prefix="tern-pg-"))
        if os.geteuid() == 0:
            pw = pwd.getpwnam(PG_USER)
            os.chown(folder, pw.pw_uid, pw.pw_gid)
        pg = cls(folder)
        _run([str(PG_BIN / "initdb"), "-D", str(pg.data), "-U", "postgres", "--auth=trust",
              "-E", "UTF8", "--locale=C", "--no-sync"], timeout=120)
        pg._configure()
        pg.start()
        pg.sql("CREATE ROLE tern LOGIN", db="postgres")
        pg.sql("CREATE DATABASE tern OWNER tern", db="postgres")
        return pg

    def _configure(self, **extra):
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.folder}'",
            "max_connections": "100",
            "wal_level": "replica",
            "max_wal_senders": "5",
            "hot_standby": "on",
            "shared_buffers": "'32MB'",
        }
        settings.update(extra)
        with open(self.data / "postgresql.auto.conf", "a") as f:
            for k, v in settings.items():
                f.write(f"{k} = {v}\n")

    @property
    def conninfo(self):
        return f"host=127.0.0.1 port={self.port} dbname={self.dbname} user={self.user} connect_timeout=5"

    # --- running -------------------------------------------------------
    def start(self, timeout=60):
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
              "-t", str(timeout), "start"], timeout=timeout + 10)
        _wait_until("ready", self.ready, timeout)

    def ready(self):
        r = subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port),
                            "-t", "2"], capture_output=True, timeout=10)
        return r.returncode == 0

    def stop(self, mode="fast"):
        if not (self.data / "postmaster.pid").exists():
            return
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"],
             timeout=90, check=False)

    def kill9(self):
        """Kills the postmaster and every backend at once, as a machine dying would."""
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                  text=True).stdout.split()
        for p in [pid, *map(int, children)]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass

        def gone():
            return all(not pathlib.Path(f"/proc/{p}").exists() or
                       "zombie" in pathlib.Path(f"/proc/{p}/status").read_text().lower()
                       for p in [pid, *map(int, children)])
        _wait_until("killed", gone, 30)
        # A new start must not find the old pid file's server.
        pid_file.unlink(missing_ok=True)

    def sql(self, query, db="tern"):
        """Runs query as the superuser; its rows as text, one a line, columns split by |."""
        r = _run([str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  "-d", db, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", query], check=False)
        if r.returncode != 0:
            raise AssertionError(f"psql failed: {r.stderr.strip()}")
        return r.stdout.strip()

    # --- replication ---------------------------------------------------
    def standby(self, synchronous=True, timeout=60):
        """A standby of this server made with pg_basebackup -R, started and
        streaming; with synchronous, this server waits for it on every commit
        (synchronous_standby_names = '*'). Returns its PgCluster."""
        folder = pathlib.Path(tempfile.mkdtemp(prefix="tern-pg-standby-"))
        if os.geteuid() == 0:
            pw = pwd.getpwnam(PG_USER)
            os.chown(folder, pw.pw_uid, pw.pw_gid)
        standby = PgCluster(folder)
        _run([str(PG_BIN / "pg_basebackup"), "-D", str(standby.data), "-h", "127.0.0.1",
              "-p", str(self.port), "-U", "postgres", "-R", "-X", "stream", "--checkpoint=fast",
              "--no-sync"], timeout=300)
        standby._configure()
        standby.start(timeout)
        _wait_until("the standby streams", lambda: self.sql(
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'", db="postgres") != "0",
            timeout)
        if synchronous:
            self.sql("ALTER SYSTEM SET synchronous_standby_names = '*'", db="postgres")
            self.sql("SELECT pg_reload_conf()", db="postgres")
            _wait_until("the standby is synchronous", lambda: self.sql(
                "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
                db="postgres") != "0", timeout)
        return standby

    def promote(self, timeout=60):
        """Makes this standby a primary (pg_ctl promote) and waits until it takes writes."""
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", str(timeout), "promote"],
             timeout=timeout + 10)
        _wait_until("promoted", lambda: self.sql("SELECT pg_is_in_recovery()") == "f", timeout)

    def destroy(self):
        self.stop(mode="immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


def multi_host_conninfo(*clusters):
    """One libpq string over several servers; libpq takes the one that takes writes."""
    hosts = ",".join("127.0.0.1" for _ in clusters)
    ports = ",".join(str(c.port) for c in clusters)
    return (f"host={hosts} port={ports} dbname=tern user=tern "
            "target_session_attrs=read-write connect_timeout=5")


def tern_config(conninfo, listeners=(("default", ""),), extra="", delivery=None):
    """ternlib.base_config with the spool in PostgreSQL at conninfo."""
    from ternlib import base_config
    text = base_config(listeners, extra=extra, delivery=delivery)
    return text.replace("[spool]\n", f'[spool]\nbackend = "postgres"\npostgres = "{conninfo}"\n', 1)


@pytest.fixture
def pg():
    """A private PostgreSQL with database and role tern; standbys made with
    pg.standby() are torn down with it."""
    why = missing()
    if why:
        pytest.fail(why)  # never skipped silently
    cluster = PgCluster.create()
    standbys = []
    original = cluster.standby

    def standby(*args, **kwargs):
        s = original(*args, **kwargs)
        standbys.append(s)
        return s
    cluster.standby = standby
    try:
        yield cluster
    finally:
        for s in standbys:
            s.destroy()
        cluster.destroy()
