"""Least privilege (DESIGN principle 7, SPEC §2 `user`, SPEC §4): tern serve
started as root runs as its user with no root group, everything it creates is
that user's alone (0700/0600), a missing or root user and a symlinked spool are
refused, a root-owned folder that is not tern's is never taken over, a Maildir
tern cannot use is a warning (not a refusal to start), and the control socket
is a 0600 file in the spool folder that both sides check (root's client talks
only to tern's user, never through a symbolic link). These tests need root:
they fail (never skip) without it."""
import os
import pathlib
import pwd
import stat
import subprocess
import sys
import textwrap

import pytest

from delivery_env import wait_for_maildir
from ternlib import TERN, TERN_USER, Client, TernServer, base_config, make_traversable


@pytest.fixture(autouse=True)
def must_be_root():
    assert os.geteuid() == 0, "these tests start tern serve as root: run them as root (as CI does)"


def tern_ids():
    pw = pwd.getpwnam(TERN_USER)
    return pw.pw_uid, pw.pw_gid


def status_ids(pid):
    """(uids, gids, groups) of a process, from /proc/PID/status."""
    fields = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return ([int(x) for x in fields["Uid"]], [int(x) for x in fields["Gid"]],
            [int(x) for x in fields["Groups"]])


def serve_once(folder, config_text, timeout=30):
    """tern serve that is expected to refuse to start: (exit status, stderr)."""
    server = TernServer(folder, config_text)
    out = subprocess.run([TERN, "serve", "--config", str(server.config)], capture_output=True,
                         text=True, timeout=timeout)
    return out.returncode, out.stderr


def send(port, body="Subject: privileges\r\n\r\nhello\r\n"):
    with Client(port) as c:
        c.start_data()
        c.send(body + ".\r\n")
        assert c.reply().startswith("250 ")
        assert c.cmd("QUIT").startswith("221")


@pytest.fixture
def explicit_user_server(tmp_path):
    """A delivering tern serve whose configuration names its user."""
    server = TernServer(tmp_path / "t", f'user = "{TERN_USER}"\n' + base_config([("default", "")], delivery=""))
    yield server.start()
    if server.proc.poll() is None:
        server.kill()


def test_serves_as_its_user_and_creates_only_private_files(explicit_user_server):
    server = explicit_user_server
    uid, gid = tern_ids()
    uids, gids, groups = status_ids(server.proc.pid)
    assert uids == [uid] * 4, "real, effective, saved and file-system uid are tern's"
    assert gids == [gid] * 4
    assert groups == [gid], "no supplementary group (root's least of all)"

    send(server.port)
    wait_for_maildir(server, "kate")
    assert server.queue("list").returncode == 0
    server.stop()

    seen = 0
    for top in ("spool", "log", "mail"):
        root = server.folder / top
        for path in [root, *root.rglob("*")]:
            st = path.lstat()
            assert st.st_uid == uid and st.st_gid == gid, f"{path} belongs to {st.st_uid}:{st.st_gid}"
            assert st.st_mode & 0o077 == 0, f"{path} is {stat.filemode(st.st_mode)}"
            seen += 1
    assert seen > 10  # the spool's files, two logs, the Maildir and its message


def test_missing_user_is_a_clear_error(tmp_path):
    rc, err = serve_once(tmp_path / "t", 'user = "no-such-tern-user"\n' + base_config([("default", "")]))
    assert rc == 1
    assert ('tern: user "no-such-tern-user" does not exist: create it (useradd --system --no-create-home '
            'no-such-tern-user) or set user in the configuration') in err
    assert not (tmp_path / "t" / "spool").exists(), "nothing is prepared for a user that does not exist"


def test_root_user_is_refused(tmp_path):
    rc, err = serve_once(tmp_path / "t", 'user = "root"\n' + base_config([("default", "")]))
    assert rc == 1
    assert 'tern: user "root" is root' in err and "tern does not run as root" in err


def test_symlinked_spool_is_refused(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "elsewhere").mkdir()
    (folder / "spool").symlink_to(folder / "elsewhere")
    rc, err = serve_once(folder, base_config([("default", "")]))
    assert rc == 1
    assert f"spool folder {folder / 'spool'} is a symbolic link" in err
    assert list((folder / "elsewhere").iterdir()) == [], "nothing was written through the link"


def test_symlinked_log_folder_is_refused(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "elsewhere").mkdir()
    (folder / "log").symlink_to(folder / "elsewhere")
    rc, err = serve_once(folder, base_config([("default", "")]))
    assert rc == 1
    assert f"log folder {folder / 'log'} is a symbolic link" in err


def test_unreachable_folder_names_the_ancestor(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    inner = locked / "srv"
    inner.mkdir()
    server = TernServer(inner, base_config([("default", "")]))
    locked.chmod(0o700)  # TernServer opened it up: close it again
    out = subprocess.run([TERN, "serve", "--config", str(server.config)], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 1
    assert f"tern: user {TERN_USER} cannot use the spool folder {inner / 'spool'}: {locked} is drwx------ root:root" \
        in out.stderr, out.stderr


def test_open_spool_folder_is_made_private(tmp_path, make_server):
    folder = tmp_path / "t"
    (folder / "spool").mkdir(parents=True, mode=0o755)
    (folder / "spool").chmod(0o755)
    server = make_server(folder=folder)
    st = (folder / "spool").stat()
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == tern_ids()[0], "a folder root made for tern is given to its user"
    assert any("spool folder" in line and "now 0700" in line for line in server.stderr_lines), server.stderr_lines


def control_socket_checks(server):
    sock = server.folder / "spool" / "control.sock"
    st = sock.lstat()
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == tern_ids()[0]
    out = server.queue("retry", "--all")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0 message(s) will be tried now", "answered by the server, not the spool"
    out = server.queue("list")
    assert out.returncode == 0 and "The queue is empty." in out.stdout, out.stderr


def test_control_socket_is_a_private_file_in_the_spool(make_server):
    server = make_server()
    control_socket_checks(server)
    inodes = {os.readlink(f)[len("socket:["):-1] for f in pathlib.Path(f"/proc/{server.proc.pid}/fd").iterdir()
              if os.readlink(f).startswith("socket:[")}
    paths = [line.split()[7] for line in pathlib.Path("/proc/net/unix").read_text().splitlines()[1:]
             if len(line.split()) > 7 and line.split()[6] in inodes]
    assert paths and not any(p.startswith("@") for p in paths), f"no abstract socket any more: {paths}"
    server.stop()
    assert not (server.folder / "spool" / "control.sock").exists(), "removed at stop"


def test_control_socket_with_a_long_spool_path(tmp_path, make_server):
    folder = tmp_path / ("d" * 60) / ("e" * 60)
    assert len(str(folder / "spool" / "control.sock")) > 108
    server = make_server(folder=folder)
    control_socket_checks(server)


def test_stale_control_socket_is_replaced(make_server):
    server = make_server()
    server.kill()  # leaves spool/control.sock behind
    assert (server.folder / "spool" / "control.sock").exists()
    server.start()
    control_socket_checks(server)


def test_queue_on_a_stopped_server_writes_as_the_user(make_server):
    server = make_server()
    send(server.port)
    assert server.stop() == 0
    out = server.queue("retry", "--all")
    assert out.returncode == 0 and "no server running" in out.stdout, out.stderr + out.stdout
    uid = tern_ids()[0]
    for path in (server.folder / "spool").iterdir():
        assert path.lstat().st_uid == uid, f"{path} written by tern queue belongs to {path.lstat().st_uid}"
    server.start()  # the server can open what tern queue wrote
    assert len(server.queue_json()) == 1


FAKE_SERVER = textwrap.dedent("""\
    import os, socket, sys
    s = socket.socket(socket.AF_UNIX)
    os.chdir(sys.argv[1])
    s.bind("control.sock")
    s.listen(1)
    print("ready", flush=True)
    s.settimeout(30)
    c, _ = s.accept()
    c.settimeout(30)
    c.recv(100)
    c.sendall(b"ok: 99 message(s) will be tried now\\n")
    """)


def test_client_refuses_a_server_of_another_user(tmp_path):
    """Someone else's process on the socket must not answer tern queue."""
    folder = tmp_path / "t"
    server = TernServer(folder, base_config([("default", "")]))
    spool = folder / "spool"
    spool.mkdir(mode=0o700)
    nobody = pwd.getpwnam("nobody")
    os.chown(spool, nobody.pw_uid, nobody.pw_gid)
    fake = subprocess.Popen([sys.executable, "-c", FAKE_SERVER, str(spool)], stdout=subprocess.PIPE, text=True,
                            user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
    try:
        assert fake.stdout.readline().strip() == "ready"
        out = server.queue("retry", "--all")
        assert out.returncode == 1
        assert "99 message" not in out.stdout
        assert (f"is served by uid {nobody.pw_uid}, which is not user \"{TERN_USER}\": "
                "refusing to talk to it") in out.stderr, out.stderr
    finally:
        fake.kill()
        fake.wait()


def test_server_refuses_a_client_of_another_user(make_server):
    """The folder (0700) and the socket (0600) keep other users out; opened up
    by mistake, the server still answers only root and its own user."""
    server = make_server()
    spool = server.folder / "spool"
    spool.chmod(0o711)
    (spool / "control.sock").chmod(0o666)
    nobody = pwd.getpwnam("nobody")
    code = textwrap.dedent(f"""\
        import socket
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(30)
        s.connect({str(spool / "control.sock")!r})
        try:
            s.sendall(b"retry all\\n")
            print(repr(s.recv(200)))
        except (ConnectionResetError, BrokenPipeError):  # closed before or after our request
            print(repr(b""))
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                         user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "b''", "closed without an answer"
    assert server.queue("retry", "--all").stdout.strip() == "0 message(s) will be tried now"


def test_roots_folder_with_other_files_is_not_taken_over(tmp_path):
    """`directory = "/var/log"` must not hand /var/log to tern's user."""
    folder = tmp_path / "t"
    log = folder / "log"
    log.mkdir(parents=True)
    log.chmod(0o755)
    (log / "syslog").write_text("not tern's\n")
    rc, err = serve_once(folder, base_config([("default", "")]))
    assert rc == 1
    assert (f'the log folder {log} belongs to root and holds "syslog", which is not tern\'s: tern takes over '
            f"only an empty folder or one with its own files; give tern a folder of its own") in err, err
    st = log.stat()
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o755, "left as it was"


def test_a_maildir_tern_cannot_use_is_a_warning(tmp_path, make_server):
    """One mailbox owner's symlinked or locked Maildir never stops tern: it
    starts, warns, leaves the link alone, and delivers to the others."""
    folder = tmp_path / "t"
    (folder / "mail").mkdir(parents=True)
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    elsewhere.chmod(0o755)
    (folder / "mail" / "kate").symlink_to(elsewhere)
    server = make_server(folder=folder, delivery="")
    lines = "".join(server.stderr_lines)
    assert (f"the Maildir of kate@example.test {folder / 'mail' / 'kate'} is a symbolic link: tern does not "
            "follow it; it is left as it is: delivery to it answers 451 until this is fixed") in lines, lines
    assert (folder / "mail" / "kate").lstat().st_uid == 0 and elsewhere.stat().st_uid == 0
    with Client(server.port) as c:
        c.start_data(recipient="postmaster@example.test")
        c.send("Subject: still served\r\n\r\nhello\r\n.\r\n")
        assert c.reply().startswith("250 ")
    wait_for_maildir(server, "postmaster")
    assert list(elsewhere.iterdir()) == []
    server.stop()

    locked = folder / "locked"
    locked.mkdir(mode=0o700)
    locked.chmod(0o700)
    config = server.config.read_text().replace('maildir = "mail/kate"', 'maildir = "locked/kate"')
    server.config.write_text(config)
    server.start()
    lines = "".join(server.stderr_lines)
    assert (f"user {TERN_USER} cannot use the Maildir of kate@example.test {locked / 'kate'}: {locked} is "
            "drwx------ root:root") in lines and "delivery to it answers 451" in lines, lines


PROBED_SERVER = textwrap.dedent("""\
    import os, socket, sys
    s = socket.socket(socket.AF_UNIX)
    s.bind(sys.argv[1])
    s.listen(4)
    print("ready", flush=True)
    s.settimeout(30)
    c, _ = s.accept()
    c.settimeout(30)
    print("first:", c.recv(100).decode().strip(), flush=True)
    c.sendall(b"ok: 99 message(s) will be tried now\\n")
    """)


def root_socket_behind(tmp_path, link):
    """A server running as root on tmp_path/other.sock, with the tern user's
    spool folder; link: control.sock is a symbolic link to it, otherwise that
    server listens on control.sock itself. (server, fake)"""
    folder = tmp_path / "t"
    server = TernServer(folder, base_config([("default", "")]))
    spool = folder / "spool"
    spool.mkdir(mode=0o700)
    uid, gid = tern_ids()
    os.chown(spool, uid, gid)
    where = tmp_path / "other.sock" if link else spool / "control.sock"
    fake = subprocess.Popen([sys.executable, "-c", PROBED_SERVER, str(where)], stdout=subprocess.PIPE, text=True)
    assert fake.stdout.readline().strip() == "ready"
    if link:
        (spool / "control.sock").symlink_to(where)
    return server, fake, where


def first_request(fake, where):
    """What the fake server received first: tern queue's request, or else our probe."""
    import socket
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(30)
        probe.connect(str(where))
        probe.sendall(b"probe\n")
        line = fake.stdout.readline().strip()
    fake.wait(timeout=30)
    return line


def test_root_client_does_not_follow_a_symlinked_control_socket(tmp_path):
    """tern's user swaps control.sock for a link to another root-owned socket:
    root's tern queue does not connect to it."""
    server, fake, where = root_socket_behind(tmp_path, link=True)
    try:
        out = server.queue("retry", "--all")
        assert "99 message" not in out.stdout + out.stderr
        assert first_request(fake, where) == "first: probe", "tern queue never connected through the link"
    finally:
        fake.kill()
        fake.wait()


def test_root_client_refuses_a_server_running_as_root(tmp_path):
    """tern serve never runs as root: a root peer on control.sock is not tern."""
    server, fake, where = root_socket_behind(tmp_path, link=False)
    try:
        out = server.queue("retry", "--all")
        assert out.returncode == 1
        assert "99 message" not in out.stdout
        assert (f"is served by uid 0, which is not user \"{TERN_USER}\": refusing to talk to it"
                in out.stderr), out.stderr
    finally:
        fake.kill()
        fake.wait()


REPO = pathlib.Path(__file__).resolve().parents[2]


def prepare_run(clone):
    """scripts/prepare-run.sh in a copy of the clone's scripts/ and etc/: (exit status, stderr)."""
    out = subprocess.run([str(clone / "scripts" / "prepare-run.sh"), "etc/tern.toml"], capture_output=True,
                         text=True, timeout=60, cwd=clone)
    return out.returncode, out.stderr


@pytest.fixture
def clone(tmp_path):
    top = tmp_path / "clone"
    (top / "scripts").mkdir(parents=True)
    (top / "etc").mkdir()
    (top / "scripts" / "prepare-run.sh").write_bytes((REPO / "scripts" / "prepare-run.sh").read_bytes())
    (top / "scripts" / "prepare-run.sh").chmod(0o755)
    (top / "etc" / "tern.toml").write_bytes((REPO / "etc" / "tern.toml").read_bytes())
    make_traversable(top)
    return top


def test_prepare_run_readies_var_and_runs_again(clone):
    for _ in range(2):  # the second run finds var/ owned by tern's user
        rc, err = prepare_run(clone)
        assert rc == 0, err
    uid = tern_ids()[0]
    for sub in ("spool", "log", "mail", "tls", "tls/key.pem", "tls/cert.pem"):
        st = (clone / "var" / sub).lstat()
        assert st.st_uid == uid and st.st_mode & 0o077 == 0, f"var/{sub} is {stat.filemode(st.st_mode)} {st.st_uid}"


@pytest.mark.parametrize("planted", ["var", "var/spool", "var/tls/key.pem"])
def test_prepare_run_refuses_a_symbolic_link(clone, tmp_path, planted):
    precious = tmp_path / "precious"
    precious.mkdir()
    precious.chmod(0o755)
    (precious / "file").write_text("keep\n")
    (precious / "file").chmod(0o644)
    (clone / planted).parent.mkdir(parents=True, exist_ok=True)
    (clone / planted).symlink_to(precious / "file" if planted.endswith(".pem") else precious)
    rc, err = prepare_run(clone)
    assert rc == 1
    assert f"prepare-run: {planted} is a symbolic link" in err, err
    assert sorted(p.name for p in precious.iterdir()) == ["file"]
    st = (precious / "file").stat()
    assert (precious / "file").read_text() == "keep\n" and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o644
    assert precious.stat().st_uid == 0 and stat.S_IMODE(precious.stat().st_mode) == 0o755


def test_prepare_run_refuses_a_folder_of_another_user(clone):
    spool = clone / "var" / "spool"
    spool.mkdir(parents=True)
    nobody = pwd.getpwnam("nobody")
    os.chown(spool, nobody.pw_uid, nobody.pw_gid)
    rc, err = prepare_run(clone)
    assert rc == 1
    assert f"prepare-run: var/spool belongs to nobody (uid {nobody.pw_uid}), not to root or to you" in err, err
    assert spool.stat().st_uid == nobody.pw_uid
