"""sendmail and mailq (SPEC §1): the tern binary installed by `make install`
under a prefix and called through its links. sendmail -t -i delivers to every
To/Cc/Bcc recipient with Bcc gone from each copy; -f sets the envelope sender
(Return-Path), -F the From name, -N/-R/-V the DSN requests; a lone "." ends
input unless -i; exit codes of sysexits.h (EX_TEMPFAIL on a full maildrop,
with nothing left behind); mailq prints what `tern queue list` prints. The maildrop keeps
a submission while the server is down and hands it over exactly once, also
across kill -9 right after the pickup's commit; files other local users drop
there (garbage, huge headers, links, FIFOs, unreadable files) are moved to
bad/ and never stop the server; an ordinary user submits but cannot list or
read the folder. These tests start tern serve as root: they fail without it."""
import os
import pathlib
import pwd
import re
import signal
import subprocess

import pytest

from delivery_env import fill, maildir_files, wait_for_maildir, wait_until
from pgcluster import pg, tern_config  # noqa: F401 (fixture)
from ternlib import TERN, TERN_USER, TernServer, base_config, make_traversable

REPO = pathlib.Path(__file__).resolve().parents[2]
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
EX_USAGE, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL, EX_CONFIG = 64, 65, 67, 75, 78

MAILBOXES = "".join(f'[[mailbox]]\naddress = "{u}@example.test"\nmaildir = "mail/{u}"\n'
                    for u in ("bob", "carol"))


@pytest.fixture(autouse=True)
def must_be_root():
    assert os.geteuid() == 0, "tern serve drops to user tern and sendmail runs as nobody: run as root"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """make install DESTDIR=… PREFIX=/usr into a temp folder, twice (idempotent)."""
    root = tmp_path_factory.mktemp("install") / "root"
    cmd = ["make", "-s", "-C", str(REPO), "install", f"DESTDIR={root}", "PREFIX=/usr",
           f"BINARY={TERN}"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    (root / "usr/etc/tern/tern.toml").write_text("# edited by the administrator\n")
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    make_traversable(root / "usr/sbin")
    make_traversable(root / "usr/bin")
    return root / "usr"


def make_server(tmp_path, delivery="", listener="", extra=""):
    return TernServer(tmp_path / "t", base_config([("default", listener)], extra=MAILBOXES + extra,
                                                  delivery=delivery))


def sendmail(installed, server, args, data, user=None, env=None, config=True):
    cmd = [str(installed / "sbin/sendmail")] + (["-C", str(server.config)] if config else []) + args
    if user:
        cmd = NOBODY + cmd
    return subprocess.run(cmd, input=data if isinstance(data, bytes) else data.encode(),
                          capture_output=True, timeout=60, env={**os.environ, **(env or {})})


def drop_files(server):
    return sorted(p.name for p in (server.folder / "maildrop").iterdir() if p.name != "bad")


def mail_of(server, user):
    return [p.read_bytes() for p in maildir_files(server, user)]


def test_install_puts_the_binary_and_relative_links_under_the_prefix(installed):
    assert (installed / "sbin/tern").is_file() and os.access(installed / "sbin/tern", os.X_OK)
    assert os.readlink(installed / "sbin/sendmail") == "tern"
    assert os.readlink(installed / "bin/mailq") == "../sbin/tern"
    # the second install kept the administrator's configuration
    assert (installed / "etc/tern/tern.toml").read_text() == "# edited by the administrator\n"
    out = subprocess.run([str(installed / "sbin/tern"), "version"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("tern")


def test_t_i_delivers_to_to_cc_bcc_and_no_copy_shows_bcc(installed, tmp_path):
    server = make_server(tmp_path).start()
    try:
        message = ("To: Kate <kate@example.test>\nCc: bob@example.test (Bob)\n"
                   "Bcc: carol@example.test,\n postmaster@example.test\nSubject: tcc1\n\n"
                   "hello\n.\nstill the message\n")
        out = sendmail(installed, server, ["-t", "-i"], message)
        assert out.returncode == 0, out.stderr
        for user in ("kate", "bob", "carol", "postmaster"):
            wait_for_maildir(server, user)
        for user in ("kate", "bob", "carol", "postmaster"):
            (copy,) = mail_of(server, user)
            assert b"Subject: tcc1" in copy
            assert not re.search(rb"(?im)^bcc:", copy), f"{user}'s copy shows Bcc"
            shown = re.sub(rb"(?m)^Delivered-To: .*\n", b"", copy)  # each copy names its own
            assert b"carol@example.test" not in shown and b"postmaster@example.test" not in shown
            assert b"\n.\nstill the message\n" in copy, "-i: the lone dot is part of the message"
            assert copy.startswith(b"Return-Path: <root@mail.example.test>\n")
            assert re.search(rb"(?m)^Received: by mail\.example\.test \(tern, from local user 0 root\)", copy)
            assert re.search(rb"(?m)^Message-ID: <", copy) and re.search(rb"(?m)^Date: ", copy)
        assert drop_files(server) == []
    finally:
        server.stop()
    # the tracking log (flushed at the stop): one RECEIVE from the sendmail listener
    receives = [l for l in server.log_text("message-tracking").splitlines() if ",RECEIVE," in l]
    assert len(receives) == 1 and "sendmail" in receives[0] and "local uid 0 (root)" in receives[0]


def test_f_sets_the_envelope_sender_and_F_the_from_name(installed, tmp_path):
    server = make_server(tmp_path).start()
    try:
        out = sendmail(installed, server, ["-f", "chris@contoso.com", "-F", "Chris Smith",
                                           "kate@example.test"], "Subject: fF1\n\nbody\n")
        assert out.returncode == 0, out.stderr
        (copy,) = [p.read_bytes() for p in wait_for_maildir(server, "kate")]
        assert copy.startswith(b"Return-Path: <chris@contoso.com>\n")
        assert b"\nFrom: Chris Smith <chris@contoso.com>\n" in copy
        assert b"X-Authentication-Warning" not in copy, "root may set any sender"
        # -fSENDER attached, and a From: of the message's own is kept
        out = sendmail(installed, server, ["-fdana@contoso.com", "bob@example.test"],
                       "From: Dana <dana@contoso.com>\nSubject: fF2\n\nbody\n")
        assert out.returncode == 0, out.stderr
        (copy,) = [p.read_bytes() for p in wait_for_maildir(server, "bob")]
        assert copy.startswith(b"Return-Path: <dana@contoso.com>\n")
        assert copy.count(b"\nFrom: ") == 1 and b"\nFrom: Dana <dana@contoso.com>\n" in copy
    finally:
        server.stop()


def test_a_lone_dot_ends_input_without_i_and_not_with_it(installed, tmp_path):
    server = make_server(tmp_path).start()
    try:
        text = "Subject: {}\n\nbefore\n.\nafter the dot\n"
        assert sendmail(installed, server, ["kate@example.test"], text.format("dot1")).returncode == 0
        assert sendmail(installed, server, ["-oi", "bob@example.test"],
                        text.format("dot2")).returncode == 0
        (plain,) = [p.read_bytes() for p in wait_for_maildir(server, "kate")]
        (with_i,) = [p.read_bytes() for p in wait_for_maildir(server, "bob")]
        assert b"before\n" in plain and b"after the dot" not in plain
        assert b"before\n.\nafter the dot\n" in with_i
    finally:
        server.stop()


def test_exit_codes_of_sysexits(installed, tmp_path):
    server = make_server(tmp_path, listener="max_message_size = 20000").start()
    try:
        def run(args, data="Subject: x\n\nbody\n", **kw):
            out = sendmail(installed, server, args, data, **kw)
            lines = out.stderr.decode().strip().splitlines()
            return out.returncode, lines

        code, lines = run(["-Z", "kate@example.test"])
        assert code == EX_USAGE and "unknown option -Z" in lines[0]
        code, lines = run(["-bs"])
        assert code == EX_USAGE and "-bs is not supported" in lines[0]
        code, lines = run(["-bd"])
        assert code == EX_USAGE
        code, lines = run([])
        assert code == EX_DATAERR and len(lines) == 1 and "no recipients" in lines[0]
        code, lines = run(["-t"], "Subject: none\n\nbody\n")
        assert code == EX_DATAERR and "no recipients" in lines[0]
        code, lines = run(["kate@@example.test"])
        assert code == EX_DATAERR and "malformed recipient" in lines[0]
        code, lines = run(["-f", "not an address", "kate@example.test"])
        assert code == EX_DATAERR and "malformed sender" in lines[0]
        code, lines = run(["nobody-here@example.test"])
        assert code == EX_NOUSER and "unknown local user" in lines[0]
        code, lines = run(["kate@example.test"], "Subject: big\n\n" + ("z" * 100 + "\n") * 300)
        assert code == EX_DATAERR and "exceeds the maximum message size (20000" in lines[0]
        code, lines = run(["-C", str(tmp_path / "missing.toml"), "kate@example.test"], config=False)
        assert code == EX_CONFIG and "configuration" in lines[0]
        code, lines = run(["-N", "success,failure", "-R", "hdrs", "-V", "envid1", "-odb", "-oem",
                           "-v", "-bm", "-i", "kate@example.test"], "Subject: ignored1\n\nbody\n")
        assert code == 0, lines
        assert b"Subject: ignored1" in wait_for_maildir(server, "kate")[0].read_bytes()
    finally:
        server.stop()


def test_mailq_prints_what_tern_queue_list_prints(installed, tmp_path):
    server = make_server(tmp_path, delivery=None).start()  # held: the mail stays queued
    try:
        for n in range(2):
            out = sendmail(installed, server, ["kate@example.test", "bob@example.test"],
                           f"Subject: q{n}\n\nbody\n")
            assert out.returncode == 0, out.stderr
        wait_until(lambda: len(server.queue_json()) == 2, what="two queued messages")
        expected = server.queue("list")
        assert expected.returncode == 0 and "kate@example.test" in expected.stdout
        for cmd, env in (([str(installed / "bin/mailq"), "-C", str(server.config)], {}),
                         ([str(installed / "bin/mailq")], {"TERN_CONFIG": str(server.config)}),
                         ([str(installed / "sbin/sendmail"), "-bp", "-C", str(server.config)], {})):
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                                 env={**os.environ, **env})
            assert out.returncode == 0, out.stderr
            assert out.stdout == expected.stdout
    finally:
        server.stop()


def test_N_R_V_are_the_dsn_requests_of_rfc_3461(installed, tmp_path):
    server = make_server(tmp_path, delivery=None).start()  # held: the envelope stays to be read
    try:
        out = sendmail(installed, server, ["-N", "success,delay", "-R", "hdrs", "-V", "env42",
                                           "kate@example.test", "bob@example.test"],
                       "Subject: dsn1\n\nbody\n")
        assert out.returncode == 0, out.stderr
        (queued,) = wait_until(lambda: server.queue_json(), what="the message queued")
        assert queued["ret"] == "HDRS" and queued["envid"] == "env42"
        assert queued["listener"] == "sendmail" and queued["sender"] == "root@mail.example.test"
        assert [r["notify"] for r in queued["recipients"]] == ["SUCCESS,DELAY"] * 2
        bad = sendmail(installed, server, ["-N", "sometimes", "kate@example.test"], "x\n")
        assert bad.returncode == EX_USAGE and b"-N" in bad.stderr
    finally:
        server.stop()


def test_a_submission_while_the_server_is_down_is_delivered_once_it_starts(installed, tmp_path):
    server = make_server(tmp_path).start()  # makes the maildrop
    server.stop()
    for n in range(3):
        out = sendmail(installed, server, ["kate@example.test"], f"Subject: down{n}\n\nbody\n")
        assert out.returncode == 0, out.stderr
    assert len(drop_files(server)) == 3
    server.start()
    try:
        files = wait_for_maildir(server, "kate", 3)
        subjects = sorted(re.search(rb"Subject: (\S+)", p.read_bytes()).group(1) for p in files)
        assert subjects == [b"down0", b"down1", b"down2"]
        wait_until(lambda: drop_files(server) == [], what="the maildrop emptied")
    finally:
        server.stop()
    # a restart finds nothing left to queue
    server.start()
    try:
        out = sendmail(installed, server, ["kate@example.test"], "Subject: down3\n\nbody\n")
        assert out.returncode == 0
        wait_for_maildir(server, "kate", 4)
        assert len(maildir_files(server, "kate")) == 4
    finally:
        server.stop()


def subjects_in(server, user):
    counts = {}
    for p in maildir_files(server, user):
        tag = re.search(rb"Subject: (\S+)", p.read_bytes()).group(1).decode()
        counts[tag] = counts.get(tag, 0) + 1
    return counts


def test_kill_9_right_after_the_pickup_commit_queues_nothing_twice(installed, tmp_path):
    server = make_server(tmp_path)
    # The fault point: the server kills itself after the commit, before the unlink.
    server.start(env={"TERN_FAULT_PICKUP_AFTER_COMMIT": "1"})
    out = sendmail(installed, server, ["kate@example.test"], "Subject: crash1\n\nbody\n")
    assert out.returncode == 0, out.stderr
    assert server.proc.wait(timeout=30) == -signal.SIGKILL
    assert len(drop_files(server)) == 1, "killed between the commit and the removal"
    server.start()
    try:
        wait_for_maildir(server, "kate")
        wait_until(lambda: drop_files(server) == [], what="the committed file removed")
        wait_until(lambda: server.queue_json() == [], what="the queue emptied")
        assert subjects_in(server, "kate") == {"crash1": 1}
    finally:
        server.stop()


def test_rounds_of_submit_and_kill_9_deliver_each_message_exactly_once(installed, tmp_path):
    server = make_server(tmp_path)
    sent = []
    for rnd in range(3):
        server.start()
        for n in range(4):
            tag = f"round{rnd}x{n}"
            out = sendmail(installed, server, ["kate@example.test"], f"Subject: {tag}\n\nbody\n")
            assert out.returncode == 0, out.stderr
            sent.append(tag)
        server.kill()
    server.start()
    try:
        wait_for_maildir(server, "kate", len(sent))
        wait_until(lambda: drop_files(server) == [] and server.queue_json() == [],
                   what="maildrop and queue empty")
        assert subjects_in(server, "kate") == {tag: 1 for tag in sent}
    finally:
        server.stop()


def test_hostile_drop_files_are_moved_aside_and_never_stop_the_server(installed, tmp_path):
    server = make_server(tmp_path).start()
    drop = server.folder / "maildrop"
    try:
        name = lambda n: f"1000000{n:03d}." + f"{n:032x}"
        stage = server.folder / "stage"  # written whole there, then renamed in: the
        stage.mkdir()                    # pickup never sees a file half written

        def put(file_name, data, owner=None, mode=None):
            path = stage / file_name
            path.write_bytes(data)
            if owner is not None:
                os.chown(path, owner, owner)
            if mode is not None:
                os.chmod(path, mode)
            os.rename(path, drop / file_name)

        put(name(1), os.urandom(4096))
        put(name(2), b"TERN-MAILDROP 1\nR kate@example.test\n\nX-Big: " + b"a" * 900
            + (b"\r\n " + b"a" * 900) * 1500 + b"\r\n\r\nbody\r\n")
        (drop / name(3)).symlink_to("/etc/passwd")
        os.mkfifo(drop / name(4))
        put("not-a-drop-name", b"hello")
        # a well-formed drop by another user that tern cannot read (mode 0600)
        put(name(5), b"TERN-MAILDROP 1\nR kate@example.test\n\nSubject: hidden\r\n\r\nx\r\n",
            owner=65534, mode=0o600)
        # bad envelope lines and a bare LF inside the message
        put(name(6), b"TERN-MAILDROP 1\nR kate@example.test\nZ what\n\nSubject: a\r\n\r\nx\r\n")
        put(name(7), b"TERN-MAILDROP 1\nR kate@example.test\n\nSubject: a\nb\r\n\r\nx\r\n")
        # a second link to a file elsewhere (tern would mail someone else's file)
        elsewhere = server.folder / "secret.txt"
        elsewhere.write_bytes(b"TERN-MAILDROP 1\nR kate@example.test\n\nSubject: linked\r\n\r\nx\r\n")
        os.link(elsewhere, drop / name(8))
        hostile = [name(n) for n in range(1, 9)] + ["not-a-drop-name"]
        # a folder another user keeps closed: neither movable nor removable; logged, skipped
        closed = stage / name(9)
        closed.mkdir()
        (closed / "inside").write_bytes(b"x")
        os.chown(closed, 65534, 65534)
        os.chmod(closed, 0o700)
        os.rename(closed, drop / name(9))
        # the good one sorts after them: when it is delivered, they were all seen
        out = sendmail(installed, server, ["kate@example.test"], "Subject: good1\n\nbody\n")
        assert out.returncode == 0, out.stderr
        wait_for_maildir(server, "kate")
        wait_until(lambda: drop_files(server) == [name(9)], what="every hostile file moved aside")
        assert server.proc.poll() is None, "the server is still running"
        aside = [p.name for p in (drop / "bad").iterdir()]
        for h in hostile:
            assert any(a.endswith("." + h.replace("-", "-")) for a in aside), (h, aside)
        assert subjects_in(server, "kate") == {"good1": 1}
        stderr_tail = server.stop()
        assert stderr_tail == 0
        text = "".join(server.stderr_lines)
        for reason in ("a symbolic link", "not a regular file", "not a maildrop file",
                       "header section too large", "Permission denied", "a file with 2 links",
                       "unknown envelope line", "a bare LF", "cannot be moved or removed"):
            assert reason in text, reason
        assert text.count(name(9)) == 1, "the folder that stays is reported once"
        assert b"linked" not in b"".join(mail_of(server, "kate"))
    finally:
        server.stop()


def test_an_ordinary_user_submits_but_cannot_list_or_read_the_maildrop(installed, tmp_path):
    server = make_server(tmp_path).start()
    drop = server.folder / "maildrop"
    st = drop.stat()
    assert st.st_mode & 0o7777 == 0o3733 and st.st_uid != 0
    try:
        out = sendmail(installed, server, ["-f", "someone@contoso.com", "-F", "Some One",
                                           "kate@example.test"], "Subject: user1\n\nbody\n",
                       user="nobody")
        assert out.returncode == 0, out.stderr
        (copy,) = [p.read_bytes() for p in wait_for_maildir(server, "kate")]
        assert copy.startswith(b"Return-Path: <someone@contoso.com>\n")
        assert b"from local user 65534 nobody" in copy
        assert (b"X-Authentication-Warning: mail.example.test: nobody set sender to "
                b"someone@contoso.com using -f") in copy
        # without -f: the user's own address at the configured host name
        out = sendmail(installed, server, ["bob@example.test"], "Subject: user2\n\nbody\n",
                       user="nobody")
        assert out.returncode == 0, out.stderr
        (copy,) = [p.read_bytes() for p in wait_for_maildir(server, "bob")]
        assert copy.startswith(b"Return-Path: <nobody@mail.example.test>\n")
        assert b"X-Authentication-Warning" not in copy
    finally:
        server.stop()
    # While tern is down a submission waits in the folder: nobody may not list
    # the folder nor read root's file even knowing its name.
    out = sendmail(installed, server, ["kate@example.test"], "Subject: secret\n\nbody\n")
    assert out.returncode == 0
    (name,) = drop_files(server)
    listing = subprocess.run(NOBODY + ["ls", str(drop)], capture_output=True, timeout=30)
    assert listing.returncode != 0 and b"Permission denied" in listing.stderr
    reading = subprocess.run(NOBODY + ["cat", str(drop / name)], capture_output=True, timeout=30)
    assert reading.returncode != 0 and b"secret" not in reading.stdout
    bad = subprocess.run(NOBODY + ["ls", str(drop / "bad")], capture_output=True, timeout=30)
    assert bad.returncode != 0


def test_a_full_maildrop_is_ex_tempfail_and_leaves_nothing_behind(installed, tmp_path):
    server = make_server(tmp_path)
    drop = server.folder / "maildrop"
    drop.mkdir()
    pw = pwd.getpwnam(TERN_USER)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                        f"size=2m,mode=0700,uid={pw.pw_uid},gid={pw.pw_gid}", "tmpfs", str(drop)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"cannot mount a tmpfs (these tests need root): {r.stderr}"
    try:
        server.start()  # makes the maildrop on the tmpfs its own
        server.stop()
        ballast = fill(drop / "bad")
        out = sendmail(installed, server, ["kate@example.test"],
                       "Subject: full1\n\n" + "x" * 100 + "\n")
        assert out.returncode == EX_TEMPFAIL, out.stderr
        assert b"No space left" in out.stderr and len(out.stderr.splitlines()) == 1
        assert drop_files(server) == [], "the temporary file is removed"
        ballast.unlink()
        out = sendmail(installed, server, ["kate@example.test"], "Subject: full2\n\nbody\n")
        assert out.returncode == 0, out.stderr
        server.start()
        wait_for_maildir(server, "kate")
        assert subjects_in(server, "kate") == {"full2": 1}
    finally:
        server.stop()
        subprocess.run(["umount", "-l", str(drop)], capture_output=True, timeout=30)


def test_a_maildrop_tern_cannot_use_is_a_warning_not_a_stop(installed, tmp_path):
    """A symbolic link where the maildrop should be: tern serve warns and
    serves mail; sendmail refuses to write through the link (EX_TEMPFAIL)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = make_server(tmp_path)
    (server.folder / "maildrop").symlink_to(elsewhere)
    server.start()
    try:
        assert any("maildrop folder" in l and "symbolic link" in l for l in server.stderr_lines)
        out = sendmail(installed, server, ["kate@example.test"], "Subject: link1\n\nbody\n")
        assert out.returncode == EX_TEMPFAIL, out.stderr
        assert list(elsewhere.iterdir()) == [], "nothing written through the link"
        queue = server.queue("list")
        assert queue.returncode == 0
    finally:
        server.stop()


def test_a_flood_of_temporary_files_with_future_times_never_hides_a_submission(installed, tmp_path):
    """A local user fills the maildrop with more temporary files than one scan
    reads, their times set far ahead: the pickup reads finished submissions
    anyway (temporary files have a bound of their own) and ages the temporary
    files by their change time, which their owner cannot set."""
    server = make_server(tmp_path).start()  # makes the maildrop
    server.stop()
    folder = server.folder / "maildrop"
    nobody = pwd.getpwnam("nobody")
    for n in range(40_000):  # four scans' worth: most orders hide the submission from the old bound
        p = folder / f".tmp.flood{n:05d}"
        p.write_bytes(b"x")
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
        os.utime(p, (4102444800, 4102444800))  # 2100-01-01
    out = sendmail(installed, server, ["kate@example.test"], "Subject: through\n\nbody\n", user=True)
    assert out.returncode == 0, out.stderr
    server.start()
    try:
        [mail] = wait_for_maildir(server, "kate")
        assert b"Subject: through" in mail.read_bytes()
    finally:
        server.stop()
    assert len(list(folder.glob(".tmp.flood*"))) == 40_000  # fresh: left for their writers


def test_kill_9_after_the_pickup_commit_on_the_postgres_spool_queues_nothing_twice(installed, tmp_path, pg):
    """The same crash on the cluster's spool: the drop file's name is recorded in
    the commit of its message (table pickups), so the restarted node unlinks
    the file instead of queueing it again."""
    server = TernServer(tmp_path / "t", tern_config(pg.conninfo, extra=MAILBOXES, delivery=""))
    server.start(env={"TERN_FAULT_PICKUP_AFTER_COMMIT": "1"})
    out = sendmail(installed, server, ["kate@example.test"], "Subject: pgcrash\n\nbody\n")
    assert out.returncode == 0, out.stderr
    assert server.proc.wait(timeout=30) == -signal.SIGKILL
    assert len(drop_files(server)) == 1, "killed between the commit and the removal"
    assert pg.sql("SELECT count(*) FROM pickups").strip() == "1"
    server.start()
    try:
        wait_for_maildir(server, "kate")
        wait_until(lambda: drop_files(server) == [], what="the committed file removed")
        wait_until(lambda: server.queue_json() == [], what="the queue emptied")
        wait_until(lambda: pg.sql("SELECT count(*) FROM pickups").strip() == "0",
                   what="the record forgotten once the file is gone")
        assert subjects_in(server, "kate") == {"pgcrash": 1}
    finally:
        server.stop()
