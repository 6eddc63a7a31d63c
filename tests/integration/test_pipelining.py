"""PIPELINING (RFC 2920): a burst of whole transactions in one write gets its
replies back in order, and each message is queued once."""
import re

from ternlib import Client


def test_pipelined_burst_replies_in_order(server):
    n = 20
    burst = "EHLO contoso.com\r\n"
    for i in range(n):
        bad = "RCPT TO:<nobody@example.test>\r\n" if i % 4 == 0 else ""  # 5 errors: under the limit
        burst += ("MAIL FROM:<chris@contoso.com>\r\nRCPT TO:<kate@example.test>\r\n" + bad + "DATA\r\n"
                  f"Subject: burst {i}\r\n\r\nline {i}\r\n.\r\n")
    burst += "QUIT\r\n"
    with Client(server.port) as c:
        c.reply()
        c.send(burst)
        assert c.reply().startswith("250-mail.example.test Hello")
        ids = []
        for i in range(n):
            assert c.reply() == "250 2.1.0 Sender OK"
            assert c.reply() == "250 2.1.5 Recipient OK"
            if i % 4 == 0:
                assert c.reply() == "550 5.1.1 User unknown"
            assert c.reply() == "354 Start mail input; end with <CRLF>.<CRLF>"
            queued = c.reply()
            m = re.match(r"250 2\.6\.0 <.+> \[InternalId=(\d+),", queued)
            assert m, queued
            ids.append(int(m.group(1)))
        assert c.reply() == "221 2.0.0 Service closing transmission channel"
    assert ids == sorted(ids) and len(set(ids)) == n
    queue = server.queue_json()
    assert sorted(q["id"] for q in queue) == ids
    for q in queue:
        show = server.queue("show", str(q["id"]), "--content").stdout
        i = ids.index(q["id"])
        assert f"Subject: burst {i}" in show and f"line {i}" in show


def test_bdat_chunks(server):
    with Client(server.port) as c:
        c.reply()
        c.cmd("EHLO contoso.com")
        c.send("MAIL FROM:<chris@contoso.com> BODY=BINARYMIME\r\nRCPT TO:<kate@example.test>\r\n"
               "BDAT 21\r\nSubject: chunked\r\n\r\n\x00BDAT 9 LAST\r\nbinary\x00\r\n")
        assert c.reply() == "250 2.1.0 Sender OK"
        assert c.reply() == "250 2.1.5 Recipient OK"
        assert c.reply() == "250 2.0.0 21 octets received"
        assert c.reply().startswith("250 2.6.0 <")
    q = server.queue_json()[0]
    content = server.queue("show", str(q["id"]), "--json", "--content").stdout
    assert "Subject: chunked" in content and "\\u0000binary\\u0000" in content
