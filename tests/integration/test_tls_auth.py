"""STARTTLS, implicit TLS and AUTH against a real `tern serve` (issue 3): swaks,
smtplib and openssl s_client as clients; the STARTTLS injection test; the
open-relay battery; brute force slowed and cut; secrets never logged."""
import base64
import re
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from ternlib import Client, make_certificate, password_hash

PASSWORD = "correct horse battery"


@pytest.fixture
def tls_server(make_server, tmp_path):
    cert, key = make_certificate(tmp_path / "tls")
    tls = f'certificate = "{cert}"\nprivate_key = "{key}"\n'
    mailbox = (f'[[mailbox]]\naddress = "chris@example.test"\nmaildir = "mail/chris"\n'
               f'password = "{password_hash(PASSWORD)}"\naliases = ["christopher@example.test"]\n')
    server = make_server(listeners=[
        ("starttls", 'tls = "starttls"\nauth = "optional"\n' + tls),
        ("implicit", 'tls = "implicit"\nauth = "optional"\n' + tls),
        ("submission", 'tls = "starttls"\nauth = "required"\nrequire_tls = true\n' + tls),
    ], extra=mailbox)
    server.cert, server.key = cert, key
    return server


def unverified():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def swaks(*args):
    return subprocess.run(["swaks", "--from", "chris@example.test", "--to", "kate@example.test",
                           "--helo", "contoso.com", *args], capture_output=True, text=True, timeout=60)


def test_swaks_starttls(tls_server):
    out = swaks("--server", f"127.0.0.1:{tls_server.ports['starttls']}", "--tls")
    assert out.returncode == 0, out.stdout
    assert "<-  220 2.0.0 SMTP server ready" in out.stdout
    assert re.search(r"<~  250 2\.6\.0 <.+> \[InternalId=\d+, Hostname=mail\.example\.test\] Queued", out.stdout)
    q = tls_server.queue_json()[0]
    content = tls_server.queue("show", str(q["id"])).stdout
    assert "(using TLSv1.3 with cipher" in content and "with ESMTPS id" in content


def test_swaks_implicit_tls(tls_server):
    out = swaks("--server", f"127.0.0.1:{tls_server.ports['implicit']}", "--tlsc")
    assert out.returncode == 0, out.stdout
    assert re.search(r"<~  220 mail\.example\.test tern ESMTP", out.stdout), out.stdout
    assert "<~  250 2.6.0 " in out.stdout


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_auth(tls_server, mechanism):
    port = tls_server.ports["submission"]
    ok = swaks("--server", f"127.0.0.1:{port}", "--tls", "--auth", mechanism,
               "--auth-user", "chris@example.test", "--auth-password", PASSWORD, "--to", "kate@fabrikam.com")
    assert ok.returncode == 0, ok.stdout
    assert "<~  235 2.7.0 Authentication successful" in ok.stdout
    assert "<~  250 2.1.5 Recipient OK" in ok.stdout  # authenticated: may relay
    bad = swaks("--server", f"127.0.0.1:{port}", "--tls", "--auth", mechanism,
                "--auth-user", "chris@example.test", "--auth-password", "wrong")
    assert bad.returncode != 0
    assert "<~* 535 5.7.3 Authentication unsuccessful" in bad.stdout
    queue = tls_server.queue_json()
    assert len(queue) == 1 and queue[0]["auth_user"] == "chris@example.test"


def test_smtplib_starttls_login(tls_server):
    with smtplib.SMTP("127.0.0.1", tls_server.ports["submission"], timeout=30) as s:
        s.ehlo("contoso.com")
        assert "auth" not in s.esmtp_features  # not before TLS
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("chris@example.test", ["kate@example.test"], "Subject: x\r\n\r\ny\r\n")
        assert e.value.smtp_code == 530 and e.value.smtp_error == b"5.7.0 Must issue a STARTTLS command first"
        s.starttls(context=unverified())
        s.ehlo("contoso.com")
        assert s.esmtp_features["auth"].strip() == "PLAIN LOGIN"
        assert "starttls" not in s.esmtp_features
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("chris@example.test", ["kate@example.test"], "Subject: x\r\n\r\ny\r\n")
        assert e.value.smtp_code == 530 and e.value.smtp_error == b"5.7.1 Client was not authenticated"
        s.login("chris@example.test", PASSWORD)
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("kate@example.test", ["kate@example.test"], "Subject: x\r\n\r\ny\r\n")
        assert e.value.smtp_code == 550
        assert e.value.smtp_error == b"5.7.60 Client does not have permissions to send as this sender"
        s.sendmail("christopher@example.test", ["kate@example.test"], "Subject: alias\r\n\r\ny\r\n")
    assert len(tls_server.queue_json()) == 1


def test_openssl_s_client_shows_certificate(tls_server):
    out = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                          f"127.0.0.1:{tls_server.ports['starttls']}", "-servername", "mail.example.test"],
                         input="QUIT\n", capture_output=True, text=True, timeout=60)
    assert "subject=CN = mail.example.test" in out.stdout, out.stdout
    assert re.search(r"New, TLSv1\.[23], Cipher is", out.stdout), out.stdout


def test_starttls_injection_is_discarded(tls_server):
    raw = socket.create_connection(("127.0.0.1", tls_server.ports["starttls"]), timeout=30)
    f = raw.makefile("rb")
    assert f.readline().startswith(b"220 ")
    raw.sendall(b"EHLO contoso.com\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    # CVE-2011-0411: a command in the same packet as STARTTLS
    raw.sendall(b"STARTTLS\r\nMAIL FROM:<evil@contoso.com>\r\n")
    assert f.readline() == b"220 2.0.0 SMTP server ready\r\n"
    tls = unverified().wrap_socket(raw, server_hostname="mail.example.test")
    tf = tls.makefile("rb")
    tls.sendall(b"EHLO contoso.com\r\n")
    first = tf.readline()
    assert first.startswith(b"250-mail.example.test Hello"), first  # not a reply to the injected MAIL
    while not tf.readline().startswith(b"250 "):
        pass
    tls.sendall(b"RCPT TO:<kate@example.test>\r\n")
    assert tf.readline() == b"503 5.5.1 Bad sequence of commands\r\n"  # no transaction was started
    tls.close()


OPEN_RELAY_FORMS = [
    "<user%fabrikam.com@example.test>",
    '<"user@fabrikam.com"@example.test>',
    "<@example.test:user@fabrikam.com>",
    "<user@fabrikam.com@example.test>",
    "<fabrikam.com!user@example.test>",
    "<user@fabrikam.com>",
    "<user@[127.0.0.1]>",
    "<user@fabrikam.com.>",
]


def test_open_relay_battery(tls_server):
    with Client(tls_server.ports["starttls"]) as c:
        c.reply()
        c.cmd("EHLO contoso.com")
        c.cmd("MAIL FROM:<spammer@contoso.com>")
        for form in OPEN_RELAY_FORMS:
            reply = c.cmd(f"RCPT TO:{form}")
            assert reply[0] in "45", f"{form} was accepted: {reply}"
        assert c.cmd("DATA") == "503 5.5.1 Bad sequence of commands"
    assert tls_server.queue_json() == []


def auth_plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def tls_client(port):
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    f = raw.makefile("rb")
    f.readline()
    raw.sendall(b"STARTTLS\r\n")
    f.readline()
    tls = unverified().wrap_socket(raw, server_hostname="mail.example.test")
    return tls, tls.makefile("rb")


def read_reply(f):
    lines = []
    while True:
        line = f.readline().decode()
        lines.append(line.rstrip("\r\n"))
        if len(line) < 4 or line[3] != "-":
            return "\n".join(lines)


def test_brute_force_is_slowed_and_cut(tls_server):
    tls, f = tls_client(tls_server.ports["submission"])
    tls.sendall(b"EHLO contoso.com\r\n")
    read_reply(f)
    started = time.monotonic()
    replies = []
    for guess in ["a", "b", "c"]:
        tls.sendall(f"AUTH PLAIN {auth_plain('chris@example.test', guess)}\r\n".encode())
        replies.append(read_reply(f))
    elapsed = time.monotonic() - started
    assert replies[:2] == ["535 5.7.3 Authentication unsuccessful"] * 2
    assert replies[2] == "421 4.7.0 Too many errors on this connection, closing transmission channel"
    assert f.read(1) == b""  # closed
    # the 2nd and 3rd guesses waited 0.5 s and 1 s (a lower bound: only a broken build is faster)
    assert elapsed >= 1.5
    tls.close()
    # the next guess from this address waits too, even on a new connection
    tls, f = tls_client(tls_server.ports["submission"])
    tls.sendall(b"EHLO contoso.com\r\n")
    read_reply(f)
    started = time.monotonic()
    tls.sendall(f"AUTH PLAIN {auth_plain('chris@example.test', PASSWORD)}\r\n".encode())
    assert read_reply(f) == "235 2.7.0 Authentication successful"
    assert time.monotonic() - started >= 2.0
    tls.close()


def test_secrets_never_logged(tls_server):
    tls, f = tls_client(tls_server.ports["submission"])
    tls.sendall(b"EHLO contoso.com\r\n")
    read_reply(f)
    blob = auth_plain("chris@example.test", PASSWORD)
    tls.sendall(f"AUTH PLAIN {blob}\r\n".encode())
    assert read_reply(f) == "235 2.7.0 Authentication successful"
    tls.sendall(b"AUTH LOGIN\r\n")
    assert read_reply(f) == "503 5.5.1 Already authenticated"
    tls.close()
    tls, f = tls_client(tls_server.ports["submission"])
    tls.sendall(b"EHLO contoso.com\r\nAUTH LOGIN\r\n")
    read_reply(f)
    assert read_reply(f) == "334 VXNlcm5hbWU6"
    tls.sendall(base64.b64encode(b"chris@example.test") + b"\r\n")
    assert read_reply(f) == "334 UGFzc3dvcmQ6"
    tls.sendall(base64.b64encode(PASSWORD.encode()) + b"\r\n")
    assert read_reply(f) == "235 2.7.0 Authentication successful"
    tls.close()
    assert tls_server.stop() == 0
    logs = "".join(p.read_text(errors="replace") for p in (tls_server.folder / "log").glob("*"))
    assert "AUTH PLAIN ****" in logs and "authenticated as chris@example.test" in logs
    for secret in [PASSWORD, blob, base64.b64encode(PASSWORD.encode()).decode()]:
        assert secret not in logs


def test_sighup_reloads_certificate(tls_server):
    make_certificate(tls_server.cert.parent, name="renewed.example.test")
    tls_server.proc.send_signal(1)
    while "certificates reloaded" not in (line := tls_server.proc.stderr.readline()):
        assert line, "tern exited"
        assert "not reloaded" not in line, line
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{tls_server.ports['implicit']}"],
                         input="QUIT\n", capture_output=True, text=True, timeout=60)
    assert "subject=CN = renewed.example.test" in out.stdout


def test_bad_tls_and_auth_input(tls_server):
    # garbage instead of a ClientHello on the implicit-TLS port
    with socket.create_connection(("127.0.0.1", tls_server.ports["implicit"]), timeout=30) as s:
        s.sendall(b"EHLO this is not TLS\r\n" * 10)
        s.settimeout(30)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
    # a broken handshake after STARTTLS
    with socket.create_connection(("127.0.0.1", tls_server.ports["starttls"]), timeout=30) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"STARTTLS\r\n")
        assert f.readline() == b"220 2.0.0 SMTP server ready\r\n"
        s.sendall(b"\x16\x03\x01\x00\x05garbage")
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
    # AUTH that is not base64, and a 10 MB AUTH line
    tls, f = tls_client(tls_server.ports["submission"])
    tls.sendall(b"EHLO contoso.com\r\n")
    read_reply(f)
    tls.sendall(b"AUTH PLAIN %%%not-base64%%%\r\n")
    assert read_reply(f) == "501 5.5.2 Cannot decode response"
    tls.sendall(b"AUTH PLAIN " + b"A" * (10 * 1024 * 1024) + b"\r\n")
    assert read_reply(f) == "500 5.5.2 Line too long"
    tls.sendall(b"NOOP\r\n")
    assert read_reply(f) == "250 2.0.0 OK"
    tls.close()
    # the server is unaffected
    out = swaks("--server", f"127.0.0.1:{tls_server.ports['starttls']}", "--tls")
    assert out.returncode == 0, out.stdout
