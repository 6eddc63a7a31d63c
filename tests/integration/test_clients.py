"""Real clients against a real `tern serve`: Python's smtplib (with the DSN
options of the seed's RCPT line) and swaks, with and without pipelining."""
import email.message
import re
import shutil
import smtplib
import subprocess

import pytest


def message(subject="Test from Contoso"):
    m = email.message.EmailMessage()
    m["From"] = "chris@contoso.com"
    m["To"] = "kate@example.test"
    m["Subject"] = subject
    m["Message-ID"] = "<smtplib-1@contoso.com>"
    m.set_content("This is a test message\n")
    return m


def test_smtplib_send_message_with_dsn(server):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as s:
        code, banner = s.ehlo("contoso.com")
        assert code == 250
        assert s.has_extn("dsn") and s.has_extn("pipelining") and s.has_extn("smtputf8")
        assert int(s.esmtp_features["size"]) == 37748736
        refused = s.send_message(message(), mail_options=["RET=HDRS", "ENVID=test-1"],
                                 rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;kate@example.test"])
        assert refused == {}
    queue = server.queue_json()
    assert len(queue) == 1
    q = queue[0]
    assert q["message_id"] == "<smtplib-1@contoso.com>"
    assert q["envid"] == "test-1" and q["ret"] == "HDRS"
    assert q["recipients"] == [{"address": "kate@example.test", "status": "queued", "attempts": 0,
                                "local": True, "notify": "SUCCESS,FAILURE",
                                "orcpt": "rfc822;kate@example.test"}]
    assert q["size"] > 100 and q["arrival"] and q["next_attempt"]


def test_smtplib_refusals_raise(server):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as s:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            s.sendmail("chris@contoso.com", ["nobody@example.test"], "Subject: x\r\n\r\ny\r\n")
        assert e.value.recipients["nobody@example.test"] == (550, b"5.1.1 User unknown")
        # one good, one bad: the good one is queued and the bad one reported
        refused = s.sendmail("chris@contoso.com", ["kate@example.test", "x@fabrikam.com"], "Subject: x\r\n\r\ny\r\n")
        assert refused == {"x@fabrikam.com": (550, b"5.7.54 Unable to relay recipient in non-accepted domain")}
    assert len(server.queue_json()) == 1


def test_smtplib_several_messages_one_connection(server):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as s:
        for i in range(5):
            s.sendmail("chris@contoso.com", ["kate@example.test"], f"Subject: {i}\r\n\r\nbody {i}\r\n")
    assert len(server.queue_json()) == 5


def test_smtplib_utf8(server):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as s:
        s.ehlo("contoso.com")
        s.sendmail("chrís@contoso.com", ["kate@example.test"], "Subject: olá\r\n\r\nçà\r\n".encode(),
                   mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert server.queue_json()[0]["sender"] == "chrís@contoso.com"


@pytest.mark.parametrize("pipeline", [False, True])
def test_swaks(server, pipeline):
    swaks = shutil.which("swaks")
    assert swaks, "swaks is installed by scripts/install-deps.sh"
    args = [swaks, "--server", f"127.0.0.1:{server.port}", "--from", "chris@contoso.com",
            "--to", "kate@example.test", "--helo", "contoso.com", "--header", "Subject: swaks"]
    if pipeline:
        args.append("--pipeline")
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"<[-~]  250 2\.6\.0 <.+> \[InternalId=\d+, Hostname=mail\.example\.test\] Queued mail for delivery",
                     out.stdout), out.stdout
    if pipeline:
        # swaks sent MAIL, RCPT and DATA in one write and read three replies
        assert re.search(r" -> MAIL FROM:<chris@contoso.com>\n -> RCPT TO:<kate@example.test>\n -> DATA\n"
                         r"<-  250 2.1.0 Sender OK\n<-  250 2.1.5 Recipient OK\n<-  354 ", out.stdout), out.stdout
    assert len(server.queue_json()) == 1


def test_swaks_rejected_recipient_exit_code(server):
    out = subprocess.run(["swaks", "--server", f"127.0.0.1:{server.port}", "--from", "chris@contoso.com",
                          "--to", "kate@fabrikam.com"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "550 5.7.54 Unable to relay recipient in non-accepted domain" in out.stdout
    assert server.queue_json() == []
