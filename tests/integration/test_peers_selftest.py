"""Self-tests of the test peers (peers.py, postfix_peer.py, dovecot_peer.py),
with Python's smtplib as the client — not tern: if these fail, the end-to-end
delivery tests built on the peers cannot be trusted.

Each test takes its own loopback addresses (127.0.0.50 and up, skipping any
whose port is taken) so it does not collide with other tests' peers.
"""

import smtplib
import socket
import ssl

import pytest

import dovecot_peer
from peers import GARBAGE, Rule, ScriptedPeer, free_address
from ternlib import make_certificate

MESSAGE = (b"From: chris@example.test\r\nTo: kate@example.net\r\nSubject: self-test\r\n"
           b"Message-ID: <selftest@example.test>\r\n\r\nfirst line\r\n.starts with a dot\r\nlast line\r\n")


@pytest.fixture
def addr():
    """addr(port=25) -> a loopback address not yet handed out in this test whose port is free."""
    taken = []

    def pick(port=25):
        host = free_address(port, first=50, avoid=taken)
        taken.append(host)
        return host

    return pick


def test_pipelined_transaction_is_parsed_and_recorded(make_peer, addr):
    peer = make_peer(addr())
    c = smtplib.SMTP(peer.host, peer.port, timeout=5)
    code, _ = c.ehlo("client.example.test")
    assert code == 250 and c.has_extn("pipelining") and c.has_extn("dsn") and not c.has_extn("chunking")
    c.send("MAIL FROM:<chris@example.test> SIZE=200 BODY=8BITMIME\r\n"
           "RCPT TO:<kate@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;kate@example.net\r\n"
           "RCPT TO:<bob@example.net>\r\nDATA\r\n")
    replies = [c.getreply() for _ in range(4)]
    assert [r[0] for r in replies] == [250, 250, 250, 354]
    c.send(MESSAGE.replace(b"\r\n.", b"\r\n..") + b".\r\n")
    code, text = c.getreply()
    assert code == 250 and b"queued as" in text
    c.quit()

    [msg] = peer.wait_for_messages(1, timeout=5)
    [session] = peer.wait_for_sessions(1, timeout=5)
    assert msg.mail_from == "chris@example.test"
    assert msg.mail_params == {"SIZE": "200", "BODY": "8BITMIME"}
    assert msg.recipients == ["kate@example.net", "bob@example.net"]
    assert msg.rcpt_params["kate@example.net"] == {"NOTIFY": "SUCCESS,FAILURE", "ORCPT": "rfc822;kate@example.net"}
    assert msg.data == MESSAGE                      # dot-unstuffed
    assert b"\r\n..starts with a dot" in msg.raw    # as it came on the wire
    assert msg.message["Subject"] == "self-test"
    assert msg.helo == "client.example.test" and not msg.tls
    assert session.verbs == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
    assert ["MAIL FROM:<chris@example.test> SIZE=200 BODY=8BITMIME",
            "RCPT TO:<kate@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;kate@example.net",
            "RCPT TO:<bob@example.net>", "DATA"] in session.batches   # one read, four commands
    assert session.end_reason == "quit"


def test_451_on_rcpt_in_the_first_session_then_accept(make_peer, addr):
    peer = make_peer(addr(), defer={"RCPT": 1})
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as c:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            c.sendmail("chris@example.test", ["kate@example.net"], MESSAGE)
        assert refused.value.recipients["kate@example.net"][0] == 451
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as c:
        assert c.sendmail("chris@example.test", ["kate@example.net"], MESSAGE) == {}
    [msg] = peer.wait_for_messages(1, timeout=5)
    assert msg.session_id == 1
    first, second = peer.wait_for_sessions(2, timeout=5)
    assert first.rcpt_replies() == ["451 4.3.0 Temporary failure, try again later"]
    assert second.rcpt_replies() == ["250 2.1.5 Ok"]


def test_rejects_one_address_with_5xx(make_peer, addr):
    peer = make_peer(addr(), reject={"Nobody@example.net": "550 5.1.1 User unknown"})
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as c:
        refused = c.sendmail("chris@example.test", ["kate@example.net", "nobody@EXAMPLE.net"], MESSAGE)
    assert refused == {"nobody@EXAMPLE.net": (550, b"5.1.1 User unknown")}
    [msg] = peer.wait_for_messages(1, timeout=5)
    assert msg.recipients == ["kate@example.net"] and msg.delivered == ["kate@example.net"]


def test_lmtp_answers_once_per_recipient_after_data(make_peer, addr):
    peer = make_peer(addr(24), lmtp=True,
                     rules=[Rule("DOT", "452 4.2.2 Mailbox full", address="bob@example.net")])
    assert peer.port == 24
    c = smtplib.LMTP(peer.host, peer.port, timeout=5)
    assert c.ehlo()[0] == 250                       # smtplib.LMTP sends LHLO
    assert c.mail("chris@example.test")[0] == 250
    assert c.rcpt("kate@example.net")[0] == 250
    assert c.rcpt("bob@example.net")[0] == 250
    first = c.data(MESSAGE)
    second = c.getreply()
    c.quit()
    assert first[0] == 250 and b"<kate@example.net>" in first[1]
    assert second == (452, b"4.2.2 Mailbox full")
    [msg] = peer.wait_for_messages(1, timeout=5)
    assert msg.delivered == ["kate@example.net"]
    assert msg.rcpt_replies["bob@example.net"] == "452 4.2.2 Mailbox full"
    assert peer.sessions[0].helo_verb == "LHLO"


def test_lmtp_peer_refuses_ehlo(make_peer, addr):
    peer = make_peer(addr(24), lmtp=True)
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as c:
        assert c.ehlo()[0] == 500
        assert c.helo()[0] == 500


def test_never_answering_peer_times_the_client_out(make_peer, addr):
    peer = make_peer(addr(), hang="CONNECT")
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        smtplib.SMTP(peer.host, peer.port, timeout=0.5)
    [session] = peer.wait_for_sessions(1, timeout=5)  # the client gave up and closed
    assert session.replies == [] and session.end_reason.startswith("hang")


def test_drop_in_the_middle_of_data(make_peer, addr):
    peer = make_peer(addr(), drop="BODY")
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as c:
        with pytest.raises(smtplib.SMTPServerDisconnected):
            c.sendmail("chris@example.test", ["kate@example.net"], MESSAGE)
    [session] = peer.wait_for_sessions(1, timeout=5)
    assert session.end_reason == "dropped"
    [txn] = peer.transactions
    assert not txn.complete and not txn.accepted and txn.raw.startswith(b"From: chris")
    assert peer.messages == []


def test_garbage_greeting_and_huge_ehlo(make_peer, addr):
    garbage = make_peer(addr(), greeting=GARBAGE)
    with pytest.raises(smtplib.SMTPConnectError):
        smtplib.SMTP(garbage.host, garbage.port, timeout=5)
    huge = make_peer(addr(), ehlo_lines=600)
    with smtplib.SMTP(huge.host, huge.port, timeout=5) as c:
        code, text = c.ehlo()
        assert code == 250 and len(text.split(b"\n")) == 600
        assert c.has_extn("pipelining") and c.has_extn("x-padding-0001")


def test_unadvertised_parameters_are_refused(make_peer, addr):
    peer = make_peer(addr(), dsn=False, smtputf8=False)
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as c:
        c.ehlo()
        assert not c.has_extn("dsn")
        assert c.mail("chris@example.test", ["RET=HDRS"])[0] == 555
        assert c.mail("chris@example.test")[0] == 250
        assert c.rcpt("kate@example.net", ["NOTIFY=NEVER"]) == (555, b"5.5.4 Unsupported option: NOTIFY")
        c.send("RCPT TO:<kätchen@example.net>\r\n".encode())  # smtplib sends ASCII only
        assert c.getreply()[0] == 553


def test_bdat_when_chunking_is_on(make_peer, addr):
    peer = make_peer(addr(), chunking=True, binarymime=True)
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as c:
        c.ehlo()
        assert c.has_extn("chunking") and c.has_extn("binarymime")
        c.mail("chris@example.test", ["BODY=BINARYMIME"])
        c.rcpt("kate@example.net")
        half = len(MESSAGE) // 2
        c.send(b"BDAT %d\r\n" % half + MESSAGE[:half] + b"BDAT %d LAST\r\n" % (len(MESSAGE) - half)
               + MESSAGE[half:])
        assert c.getreply() == (250, b"2.0.0 %d octets received" % half)
        assert c.getreply()[0] == 250
    [msg] = peer.wait_for_messages(1, timeout=5)
    assert msg.via == "BDAT" and msg.data == MESSAGE and msg.chunks == [half, len(MESSAGE) - half]


def test_starttls(make_peer, addr, tmp_path):
    cert, key = make_certificate(tmp_path, "mx.peer.test")
    peer = make_peer(addr(), starttls=(cert, key))
    context = ssl.create_default_context(cafile=str(cert))
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as c:
        c.ehlo()
        assert c.has_extn("starttls")
        c._host = "mx.peer.test"                   # the name checked against the certificate
        assert c.starttls(context=context)[0] == 220
        c.ehlo()
        assert not c.has_extn("starttls")
        c.sendmail("chris@example.test", ["kate@example.net"], MESSAGE)
    [msg] = peer.wait_for_messages(1, timeout=5)
    session = peer.sessions[0]
    assert msg.tls and session.tls and session.tls_version.startswith("TLS")
    assert session.sni == "mx.peer.test"


def test_refused_connection_means_no_peer(addr):
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((addr(), 25), timeout=5)


def test_only_loopback_addresses(addr):
    with pytest.raises(ValueError):
        ScriptedPeer("192.0.2.1")
    with pytest.raises(ValueError):
        ScriptedPeer("0.0.0.0")


def test_stop_closes_open_sessions(addr):
    peer = ScriptedPeer(addr()).start()
    c = smtplib.SMTP(peer.host, peer.port, timeout=5)
    peer.wait_for_sessions(1, timeout=5, ended=False)
    peer.stop()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        c.noop()
    assert peer.sessions[0].end_reason == "stopped"
    c.close()
    peer.start()                                    # the same address again at once
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as c:
        assert c.noop()[0] == 250
    peer.stop()


def test_postfix_destination_delivers_to_maildir(make_postfix, addr):
    postfix = make_postfix("destination", addr(), mailboxes=["kate@example.net"])
    with smtplib.SMTP(postfix.host, postfix.port, timeout=10) as c:
        refused = c.sendmail("chris@example.test", ["kate@example.net", "nobody@example.net"], MESSAGE)
    assert refused["nobody@example.net"][0] == 550
    [msg] = postfix.wait_for_messages("kate@example.net", 1, timeout=20)
    assert msg["Subject"] == "self-test" and msg["Message-ID"] == "<selftest@example.test>"
    assert msg["Delivered-To"] == "kate@example.net"
    assert ".starts with a dot" in msg.get_content()
    assert postfix.maildir("kate@example.net").is_dir()


def test_postfix_relays_to_a_scripted_peer(make_postfix, make_peer, addr):
    peer = make_peer(addr())
    relay = make_postfix("relay", addr(), relay_to=peer.address)
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as c:
        c.sendmail("chris@example.test", ["kate@example.net", "bob@elsewhere.test"], MESSAGE)
    [msg] = peer.wait_for_messages(1, timeout=20)
    assert msg.mail_from == "chris@example.test"
    assert sorted(msg.recipients) == ["bob@elsewhere.test", "kate@example.net"]  # Postfix sorts them
    assert msg.message["Message-ID"] == "<selftest@example.test>"
    assert msg.helo == relay.hostname
    session = peer.sessions[msg.session_id]
    assert session.client[0] == relay.host          # smtp_bind_address
    relay.wait_queue_empty(timeout=20)


def test_postfix_offers_starttls_and_uses_it_when_relaying(make_postfix, make_peer, addr, tmp_path):
    cert, key = make_certificate(tmp_path, "mx.peer.test")
    peer = make_peer(addr(), starttls=(cert, key))
    relay = make_postfix("relay", addr(), relay_to=peer.address, tls=(cert, key), smtp_tls=True)
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as c:
        c.ehlo()
        assert c.has_extn("starttls")
        c.starttls(context=ssl._create_unverified_context())
        c.sendmail("chris@example.test", ["kate@example.net"], MESSAGE)
    [msg] = peer.wait_for_messages(1, timeout=20)
    assert msg.tls and peer.sessions[msg.session_id].verbs[:3] == ["EHLO", "STARTTLS", "EHLO"]
    assert "with ESMTPS id" in msg.text              # Postfix's Received: it got the message over TLS


def test_dovecot_lmtp_stores_a_message(make_dovecot, addr):
    dovecot = make_dovecot(addr(24), users=["kate@example.test"])
    c = smtplib.LMTP(dovecot.host, dovecot.port, timeout=10)
    c.ehlo()
    assert c.mail("chris@example.test")[0] == 250
    assert c.rcpt("kate@example.test")[0] == 250
    assert c.rcpt("nobody@example.test")[0] == 550
    assert c.data(MESSAGE)[0] == 250
    c.quit()
    [msg] = dovecot.wait_for_messages("kate@example.test", 1, timeout=20)
    assert msg["Subject"] == "self-test"
    assert dovecot.maildir("kate@example.test").is_dir()


def test_dovecot_is_installed():
    """install-deps.sh installs dovecot-lmtpd; say so loudly when it is missing."""
    assert dovecot_peer.available(), "apt-get install dovecot-core dovecot-lmtpd (scripts/install-deps.sh)"
