"""Bad input gets a clear reply and loses nothing: huge lines, binary garbage,
a client that vanishes mid-DATA, too many errors, an idle client, SIGTERM, a
full disk, a broken configuration."""
import os
import subprocess

import pytest

from ternlib import TERN, Client, TernServer, base_config


def test_huge_line_without_newline_then_session_goes_on(server):
    with Client(server.port) as c:
        c.reply()
        c.send(b"X" * (4 * 1024 * 1024))
        assert c.cmd("") == "500 5.5.2 Line too long"
        assert c.cmd("NOOP") == "250 2.0.0 OK"


def test_binary_garbage_gets_replies_not_a_crash(server):
    with Client(server.port) as c:
        c.reply()
        c.send(bytes(range(256)) + b"\r\n")
        assert c.reply() == "500 5.3.3 Unrecognized command"
        c.send(b"\x00\xff\xfe\r\n")
        assert c.reply() == "500 5.3.3 Unrecognized command"
    with Client(server.port) as c:  # and the server still serves others
        assert c.reply().startswith("220 ")


def test_client_vanishing_mid_data_queues_nothing(server):
    c = Client(server.port)
    c.reply()
    c.cmd("EHLO contoso.com")
    c.cmd("MAIL FROM:<chris@contoso.com>")
    c.cmd("RCPT TO:<kate@example.test>")
    c.cmd("DATA")
    c.send("Subject: half\r\n\r\nhalf a message")
    c.close()
    with Client(server.port) as c2:  # the server goes on; NOOP is answered after the first one is gone
        c2.reply()
        assert c2.cmd("NOOP") == "250 2.0.0 OK"
    assert server.stop() == 0
    assert server.queue_json() == []
    assert "connection lost while reading a message" in server.log_text("smtp-receive")


def test_too_many_errors_closes(server):
    with Client(server.port) as c:
        c.reply()
        for _ in range(10):
            assert c.cmd("WHAT") == "500 5.3.3 Unrecognized command"
        assert c.cmd("WHAT") == "421 4.7.0 Too many errors on this connection, closing transmission channel"
        assert c.closed()


def test_idle_timeout(make_server):
    server = make_server(listeners=[("default", 'command_timeout = "1s"')])
    with Client(server.port) as c:
        c.reply()
        c.cmd("EHLO contoso.com")
        # the next reply comes from the server's own clock, without a command
        assert c.reply() == "421 4.4.2 mail.example.test Connection timed out"
        assert c.closed()


def test_sigterm_is_graceful(server):
    idle = Client(server.port)
    idle.reply()
    busy = Client(server.port)
    busy.reply()
    busy.cmd("EHLO contoso.com")
    busy.cmd("MAIL FROM:<chris@contoso.com>")
    busy.cmd("RCPT TO:<kate@example.test>")
    busy.cmd("DATA")
    busy.send("Subject: in flight\r\n\r\nstarted before SIGTERM\r\n")
    server.proc.send_signal(15)
    # the idle session is told at once; the busy one may finish its message
    assert idle.reply() == "421 4.3.2 Service not available, closing transmission channel"
    busy.send(".\r\n")
    assert busy.reply().startswith("250 2.6.0 ")
    assert busy.cmd("NOOP") == "421 4.3.2 Service not available, closing transmission channel"
    assert server.proc.wait(timeout=30) == 0
    assert len(server.queue_json()) == 1


def test_config_error_names_file_line_and_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('hostname = "a.example"\n[[listener]]\nname = "x"\naddress = "127.0.0.1:0"\ntls = "tsl"\n')
    out = subprocess.run([TERN, "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip() == (f"tern: bad configuration: {cfg}:5: listener[0].tls: "
                                  'must be one of none, starttls, implicit (got "tsl")')


def test_missing_config_and_bad_command_line(tmp_path):
    out = subprocess.run([TERN, "serve", "--config", str(tmp_path / "none.toml")], capture_output=True, text=True)
    assert out.returncode != 0 and "cannot read the file" in out.stderr and len(out.stderr.splitlines()) == 1
    out = subprocess.run([TERN, "frobnicate"], capture_output=True, text=True)
    assert out.returncode != 0 and out.stderr.startswith("tern: ")


def test_port_in_use_is_a_clear_error(server, tmp_path):
    other = TernServer(tmp_path / "other", base_config([]) +
                       f'[[listener]]\nname = "clash"\naddress = "127.0.0.1:{server.port}"\n')
    out = subprocess.run([TERN, "serve", "--config", str(other.config)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "listener clash: cannot listen on 127.0.0.1:" in out.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_disk_gives_452_and_loses_nothing(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], check=True)
    try:
        server = TernServer(mount / "tern", base_config([("default", "")]).replace('min_free = "1MB"', 'min_free = "4MB"'))
        server.start()
        with Client(server.port) as c:
            c.start_data()
            first = c.cmd("Subject: before\r\n\r\nfits\r\n.")
            assert first.startswith("250 2.6.0 ")
            # fill the disk
            filler = mount / "filler"
            with open(filler, "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * (1 << 20))
                        f.flush()
                except OSError:
                    pass
            assert c.cmd("MAIL FROM:<chris@contoso.com>") == "452 4.3.1 Insufficient system storage"
            filler.unlink()
            assert c.cmd("MAIL FROM:<chris@contoso.com>") == "250 2.1.0 Sender OK"
            c.cmd("RCPT TO:<kate@example.test>")
            c.cmd("DATA")
            assert c.cmd("Subject: after\r\n\r\nfits again\r\n.").startswith("250 2.6.0 ")
        assert server.stop() == 0
        subjects = [server.queue("show", str(q["id"])).stdout for q in server.queue_json()]
        assert len(subjects) == 2
    finally:
        subprocess.run(["umount", "-l", str(mount)])
