"""Delivery status notifications end to end (SPEC §4, RFC 3464): failures
return to the sender's Maildir as multipart/report, parsed with Python's
email package; NOTIFY and RET are honoured; none for the null sender."""
import pytest

from delivery_env import dsn_summary, maildir_files, wait_for_maildir, wait_until

FABRIKAM = "fabrikam.test"


def rejecting_peer(mta):
    a = mta.address()
    peer = mta.peer(a, reject={"nobody@fabrikam.test": "550 5.1.1 User unknown"})
    mta.dns(mx=[(FABRIKAM, "mx.fabrikam.test", 10)], hosts=[("mx.fabrikam.test", a)],)
    return peer


@pytest.mark.parametrize("ret,kind", [(None, "full"), ("HDRS", "headers"), ("FULL", "full")])
def test_550_bounces_to_the_senders_maildir(mta, ret, kind):
    rejecting_peer(mta)
    tern = mta.tern()
    mail_options = [f"RET={ret}"] if ret else []
    mta.send(tern, "kate@example.test", ["nobody@fabrikam.test"], mail_options=mail_options + ["ENVID=env-7"],
             body="Subject: original subject\r\n\r\nthe original body\r\n",
             rcpt_options=["ORCPT=rfc822;nobody@fabrikam.test"])
    [notice] = wait_for_maildir(tern, "kate")
    d = dsn_summary(notice)
    assert d["exit"] == 0 and d["defects"] == []
    assert d["content_type"] == "multipart/report" and d["report_type"] == "delivery-status"
    assert d["headers"]["to"] == "kate@example.test" and "MAILER-DAEMON@mail.example.test" in d["headers"]["from"]
    assert d["headers"]["auto-submitted"] == "auto-replied"
    assert d["per_message"]["reporting-mta"] == "dns; mail.example.test"
    assert d["per_message"]["original-envelope-id"] == "env-7"
    [r] = d["recipients"]
    assert r["final-recipient"] == "rfc822; nobody@fabrikam.test"
    assert r["original-recipient"] == "rfc822;nobody@fabrikam.test"
    assert r["action"] == "failed" and r["status"] == "5.1.1"
    assert r["remote-mta"] == "dns; mx.fabrikam.test"
    assert r["diagnostic-code"].startswith("smtp; 550 5.1.1 User unknown")
    assert d["returned_kind"] == kind and d["original_subject"] == "original subject"
    notice_text = notice.read_text()
    assert notice_text.startswith("Return-Path: <>\nDelivered-To: kate@example.test\n")
    wait_until(lambda: tern.queue_json() == [], what="an empty queue")


def test_no_notice_for_the_null_sender_or_notify_never(mta):
    peer = rejecting_peer(mta)
    tern = mta.tern()
    mta.send(tern, "", ["nobody@fabrikam.test"])
    mta.send(tern, "kate@example.test", ["nobody@fabrikam.test"], rcpt_options=["NOTIFY=NEVER"])
    peer.wait_for_command("RCPT", 2)
    wait_until(lambda: tern.queue_json() == [], what="an empty queue")
    assert tern.stop() == 0
    assert maildir_files(tern, "kate") == []


def test_notify_success_for_local_delivery(mta):
    tern = mta.tern()
    mta.send(tern, "kate@example.test", ["postmaster@example.test"], rcpt_options=["NOTIFY=SUCCESS"])
    wait_for_maildir(tern, "postmaster")
    [notice] = wait_for_maildir(tern, "kate")
    d = dsn_summary(notice)
    [r] = d["recipients"]
    assert r["action"] == "delivered" and r["status"].startswith("2.")
    assert d["returned_kind"] == "headers"  # RET not given: headers only for success


def test_null_mx_fails_with_556(mta):
    mta.dns(mx=[("nullmx.test", ".", 0)])
    tern = mta.tern()
    mta.send(tern, "kate@example.test", ["someone@nullmx.test"])
    [notice] = wait_for_maildir(tern, "kate")
    [r] = dsn_summary(notice)["recipients"]
    assert r["action"] == "failed" and r["status"] == "5.1.10"
    assert "556 5.1.10" in r["diagnostic-code"]


def test_relayed_notice_when_the_next_hop_lacks_dsn(mta):
    a = mta.address()
    peer = mta.peer(a, dsn=False)
    mta.dns(mx=[(FABRIKAM, "mx.fabrikam.test", 10)], hosts=[("mx.fabrikam.test", a)])
    tern = mta.tern()
    mta.send(tern, "kate@example.test", ["bob@fabrikam.test"], rcpt_options=["NOTIFY=SUCCESS"])
    [msg] = peer.wait_for_messages(1)
    assert msg.rcpt_params["bob@fabrikam.test"] == {}  # nothing the peer did not announce
    [notice] = wait_for_maildir(tern, "kate")
    [r] = dsn_summary(notice)["recipients"]
    assert r["action"] == "relayed"


def test_delay_notice_and_expiry(mta):
    a = mta.address()
    mta.peer(a, defer={"RCPT": 1000})
    mta.dns(mx=[(FABRIKAM, "mx.fabrikam.test", 10)], hosts=[("mx.fabrikam.test", a)])
    tern = mta.tern(queue='delay_notice = "1s"\nexpire = "5s"')
    mta.send(tern, "kate@example.test", ["slow@fabrikam.test"])
    notices = wait_for_maildir(tern, "kate", n=2, timeout=60)
    kinds = [dsn_summary(n)["recipients"][0]["action"] for n in notices]
    assert sorted(kinds) == ["delayed", "failed"], kinds
    delayed = dsn_summary(next(n for n in notices if "delayed" in n.read_text()))
    assert delayed["recipients"][0]["will-retry-until"]
    assert delayed["headers"]["subject"].startswith("Delayed Mail")
    wait_until(lambda: tern.queue_json() == [], what="an empty queue")
