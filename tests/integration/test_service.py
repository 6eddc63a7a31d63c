"""Running tern as a service (issue 12, point 6): Type=notify with sd_notify
(READY=1 when the listeners are bound and the spool is open, RELOADING=1 and
READY=1 around SIGHUP, STOPPING=1), SIGHUP reloading the [[mailbox]] table (a
new mailbox is served without a restart; a broken file keeps the old table),
`tern serve --check-config` (like `postfix check`) and etc/tern.service as
systemd itself reads it (systemd-analyze verify)."""
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import textwrap

import pytest

from delivery_env import wait_for_maildir
from ternlib import TERN, Client, TernServer, base_config, make_certificate

REPO = pathlib.Path(__file__).resolve().parents[2]


class NotifySocket:
    """The service manager's end of sd_notify: a datagram socket whose messages
    are read with a bounded wait. tern sends after dropping to its user, so the
    socket file is writable by everyone (it lives in the test's folder)."""

    def __init__(self, folder):
        self.path = pathlib.Path(folder) / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.path.chmod(0o666)
        self.sock.settimeout(30)

    def next(self):
        """The next message as a dict of its KEY=value lines (30 s at most)."""
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines() if "=" in line)

    def wait_for(self, key):
        """Messages up to the one that sets key; all of them, in order."""
        seen = []
        for _ in range(20):
            seen.append(self.next())
            if key in seen[-1]:
                return seen
        raise AssertionError(f"no {key} in {seen}")

    def close(self):
        self.sock.close()


def local_config(mailboxes_extra=""):
    return base_config([("default", "")], delivery="") + mailboxes_extra


def rcpt(port, address):
    with Client(port) as c:
        assert c.reply().startswith("220 ")
        assert c.cmd("EHLO contoso.com").startswith("250")
        assert c.cmd("MAIL FROM:<chris@contoso.com>").startswith("250")
        return c.cmd(f"RCPT TO:<{address}>")


def send(port, address, subject):
    with Client(port) as c:
        c.start_data(recipient=address)
        c.send(f"Subject: {subject}\r\n\r\nhello\r\n.\r\n")
        assert c.reply().startswith("250 2.6.0")
        c.cmd("QUIT")


NEW_MAILBOX = textwrap.dedent("""\
    [[mailbox]]
    address = "nina@example.test"
    maildir = "mail/nina"
    """)


def test_notify_ready_reload_and_stopping(tmp_path):
    notify = NotifySocket(tmp_path)
    server = TernServer(tmp_path / "t", local_config())
    try:
        server.start(env={"NOTIFY_SOCKET": str(notify.path)})
        ready = notify.wait_for("READY")[-1]
        assert ready["READY"] == "1" and "listeners" in ready["STATUS"]
        server.proc.send_signal(signal.SIGHUP)
        seen = notify.wait_for("READY")
        assert seen[0].get("RELOADING") == "1", seen
        assert seen[-1]["STATUS"] == "reloaded"
        server.proc.send_signal(signal.SIGTERM)
        assert notify.wait_for("STOPPING")[-1]["STOPPING"] == "1"
        assert server.stop() == 0
    finally:
        server.stop()
        notify.close()


def test_sighup_serves_a_new_mailbox_and_keeps_the_old_table_on_a_broken_file(tmp_path):
    notify = NotifySocket(tmp_path)
    server = TernServer(tmp_path / "t", local_config())
    try:
        server.start(env={"NOTIFY_SOCKET": str(notify.path)})
        notify.wait_for("READY")
        assert rcpt(server.port, "nina@example.test").startswith("550 5.1.1")

        server.config.write_text(server.config.read_text() + NEW_MAILBOX)
        server.proc.send_signal(signal.SIGHUP)
        notify.wait_for("READY")  # the reload is done when tern says so
        assert rcpt(server.port, "nina@example.test") == "250 2.1.5 Recipient OK"
        send(server.port, "nina@example.test", "after reload")
        files = wait_for_maildir(server, "nina")
        assert b"Subject: after reload" in files[0].read_bytes()

        good = server.config.read_text()
        server.config.write_text(good + "\n[[mailbox]]\naddress = \n")  # not TOML
        server.proc.send_signal(signal.SIGHUP)
        notify.wait_for("READY")
        assert rcpt(server.port, "nina@example.test") == "250 2.1.5 Recipient OK"
        assert rcpt(server.port, "kate@example.test") == "250 2.1.5 Recipient OK"
    finally:
        server.stop()
        notify.close()
    err = "".join(server.stderr_lines)
    assert "mailboxes reloaded" in err
    assert "mailboxes not reloaded, keeping the old ones" in err


def check_config(path):
    return subprocess.run([TERN, "serve", "--check-config", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_check_config_passes_a_good_configuration(tmp_path):
    cert, key = make_certificate(tmp_path)
    config = tmp_path / "tern.toml"
    config.write_text(base_config([("default", f'tls = "starttls"\ncertificate = "{cert}"\n'
                                               f'private_key = "{key}"\n')], delivery=""))
    out = check_config(config)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().endswith("0 problems, 0 warnings"), out.stderr
    assert not (tmp_path / "spool").exists()  # checked, never created nor opened


def test_check_config_names_each_problem(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "spool").symlink_to(tmp_path / "elsewhere")
    config = tmp_path / "tern.toml"
    config.write_text(base_config(
        [("default", f'tls = "starttls"\ncertificate = "{tmp_path}/missing.pem"\n'
                     f'private_key = "{tmp_path}/missing.key"\n'),
         ("plain", 'auth = "optional"\nallow_plaintext_auth = true\n')],
        extra='[relay]\nnetworks = ["0.0.0.0/0"]\n', delivery=""))
    out = check_config(config)
    assert out.returncode == 1, out.stderr
    lines = out.stderr.splitlines()
    problems = [l for l in lines if l.startswith("tern: problem: ")]
    warnings = [l for l in lines if l.startswith("tern: warning: ")]
    assert any("listener default" in l and "missing.pem" in l for l in problems), lines
    assert any("spool folder" in l and "symbolic link" in l for l in problems), lines
    assert any("open relay" in l for l in warnings), lines
    assert any("listener plain" in l and "clear" in l for l in warnings), lines
    assert lines[-1].endswith(f"{len(problems)} problems, {len(warnings)} warnings"), lines


def test_check_config_reports_a_syntax_error_with_file_and_line(tmp_path):
    config = tmp_path / "tern.toml"
    config.write_text('hostname = "x"\n[spool\npath = "s"\n')
    out = check_config(config)
    assert out.returncode == 2
    assert f"{config}:2" in out.stderr, out.stderr


def test_the_unit_file_is_one_systemd_accepts_without_a_warning(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install the systemd package"
    unit = (REPO / "etc" / "tern.service").read_text()
    for key in ("Type=notify", "ProtectSystem=strict", "NoNewPrivileges=yes", "ReadWritePaths=",
                "ExecReload=/bin/kill -HUP $MAINPID"):
        assert key in unit
    (tmp_path / "tern.service").write_text(unit.replace("/usr/local/sbin/tern", TERN))
    out = subprocess.run([analyze, "verify", str(tmp_path / "tern.service")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr
