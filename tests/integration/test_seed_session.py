"""The seed article's Telnet session, typed line by line against a real
`tern serve`: every reply must be the one SPEC §3 gives, to the letter."""
import re

from ternlib import HOSTNAME, Client


def test_seed_session_line_by_line(server):
    with Client(server.port) as c:
        banner = c.reply()
        assert re.fullmatch(rf"220 {HOSTNAME} tern ESMTP MAIL Service ready at "
                            r"\w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", banner), banner
        assert c.cmd("EHLO contoso.com") == "\n".join([
            f"250-{HOSTNAME} Hello [127.0.0.1]", "250-SIZE 37748736", "250-PIPELINING", "250-DSN",
            "250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250-BINARYMIME", "250-CHUNKING", "250 SMTPUTF8"])
        assert c.cmd("MAIL FROM: <chris@contoso.com>") == "250 2.1.0 Sender OK"
        assert c.cmd("RCPT TO: <kate@example.test> NOTIFY=success,failure") == "250 2.1.5 Recipient OK"
        assert c.cmd("DATA") == "354 Start mail input; end with <CRLF>.<CRLF>"
        c.send("Subject: test\r\n")
        c.send("\r\n")
        c.send("This is a test message.\r\n")
        queued = c.cmd(".")
        m = re.fullmatch(rf"250 2\.6\.0 (<[^>]+@{re.escape(HOSTNAME)}>) \[InternalId=(\d+), "
                         rf"Hostname={re.escape(HOSTNAME)}\] Queued mail for delivery", queued)
        assert m, queued
        assert c.cmd("QUIT") == "221 2.0.0 Service closing transmission channel"
        assert c.closed()
    queue = server.queue_json()
    assert [q["id"] for q in queue] == [int(m.group(2))]
    assert queue[0]["message_id"] == m.group(1)
    assert queue[0]["sender"] == "chris@contoso.com"
    assert queue[0]["recipients"][0]["address"] == "kate@example.test"
    assert queue[0]["recipients"][0]["notify"] == "SUCCESS,FAILURE"
    show = server.queue("show", m.group(2))
    assert show.returncode == 0
    assert "Subject: test" in show.stdout and "Received: from contoso.com ([127.0.0.1])\n\tby mail.example.test (tern) with ESMTP id " in show.stdout


def test_seed_error_replies(make_server):
    server = make_server(listeners=[("default", ""), ("auth", 'auth = "required"')])
    with Client(server.ports["default"]) as c:
        c.reply()
        assert c.cmd("EHLO bad!domain") == "501 5.5.4 Invalid domain name"
        assert c.cmd("HELO contoso.com") == f"250 {HOSTNAME} Hello [127.0.0.1]"
        assert c.cmd("RCPT TO:<kate@example.test>") == "503 5.5.1 Bad sequence of commands"
        assert c.cmd("MAIL FROM:<chris@@contoso.com>") == "550 5.1.7 Invalid address"
        assert c.cmd("MAIL FROM:<chris@contoso.com> BOGUS=1") == "555 5.5.4 Unsupported parameter"
        assert c.cmd("MAIL FROM:<chris@contoso.com> SIZE=999999999") == \
            "552 5.3.4 Message size exceeds fixed maximum message size"
        assert c.cmd("MAIL FROM:<chris@contoso.com>") == "250 2.1.0 Sender OK"
        assert c.cmd("RCPT TO:<nobody@example.test>") == "550 5.1.1 User unknown"
        assert c.cmd("RCPT TO:<kate@fabrikam.com>") == "550 5.7.54 Unable to relay recipient in non-accepted domain"
        assert c.cmd("DATA") == "503 5.5.1 Bad sequence of commands"
        assert c.cmd("XYZZY") == "500 5.3.3 Unrecognized command"
        assert c.cmd("RSET") == "250 2.0.0 Resetting"
        assert c.cmd("NOOP") == "250 2.0.0 OK"
        assert c.cmd("A" * 2000) == "500 5.5.2 Line too long"
        assert c.cmd("QUIT") == "221 2.0.0 Service closing transmission channel"
    with Client(server.ports["auth"]) as c:
        c.reply()
        c.cmd("EHLO contoso.com")
        assert c.cmd("MAIL FROM:<chris@contoso.com>") == "530 5.7.1 Client was not authenticated"
