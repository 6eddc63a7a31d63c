"""tern with real mail software on loopback: relaying through Postfix,
receiving from Postfix, and local delivery over LMTP to Dovecot."""
import smtplib

from delivery_env import wait_for_maildir, wait_until


def test_tern_relays_to_postfix(mta, make_postfix):
    a = mta.address()
    postfix = make_postfix("destination", host=a, mailboxes=["kate@example.net"])
    mta.dns(mx=[("example.net", "mx.example.net", 10)], hosts=[("mx.example.net", a)])
    tern = mta.tern()
    mta.send(tern, "chris@example.test", ["kate@example.net"], body="Subject: via postfix\r\n\r\nhello postfix\r\n")
    [msg] = postfix.wait_for_messages("kate@example.net", 1, timeout=60)
    assert msg["Subject"] == "via postfix"
    assert "by mail.example.test (tern)" in str(msg.get_all("Received"))
    wait_until(lambda: tern.queue_json() == [], what="an empty queue")


def test_postfix_relays_to_tern(mta, make_postfix):
    tern = mta.tern()
    relay = make_postfix("relay", host=mta.address(), relay_to=f"127.0.0.1:{tern.port}")
    with smtplib.SMTP(relay.host, relay.port, timeout=30) as s:
        s.sendmail("chris@contoso.example", ["kate@example.test"], "Subject: from postfix\r\n\r\nhello tern\r\n")
    [stored] = wait_for_maildir(tern, "kate", timeout=60)
    text = stored.read_text()
    assert "Subject: from postfix" in text and "hello tern" in text
    assert text.startswith("Return-Path: <chris@contoso.example>\nDelivered-To: kate@example.test\n")
    assert f"Received: from {relay.host}" not in text or "(tern)" in text


def test_lmtp_delivery_to_dovecot(mta, make_dovecot):
    dovecot = make_dovecot(host=mta.address(), port=24)
    mailbox = f'[[mailbox]]\naddress = "lmtpuser@example.test"\nlmtp = "{dovecot.host}:{dovecot.port}"\n'
    tern = mta.tern(extra=mailbox)
    mta.send(tern, "chris@example.test", ["lmtpuser@example.test"], body="Subject: over lmtp\r\n\r\nhi dovecot\r\n")
    [msg] = dovecot.wait_for_messages("lmtpuser@example.test", 1, timeout=60)
    assert msg["Subject"] == "over lmtp"
    wait_until(lambda: tern.queue_json() == [], what="an empty queue")
