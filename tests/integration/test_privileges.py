"""Least privilege (DESIGN principle 7, SPEC §2 `user`, SPEC §4): tern serve
started as root runs as its user with no root group, everything it creates is
that user's alone (0700/0600), a missing or root user and a symlinked spool are
refused, and the control socket is a 0600 file in the spool folder that both
sides check. These tests need root: they fail (never skip) without it."""
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
        assert (f"is served by uid {nobody.pw_uid}, which is neither root, you, nor user \"{TERN_USER}\": "
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
