"""SPEC §5: the protocol log has one CSV line per event of a session, and the
message tracking log a RECEIVE line per queued message."""
import csv
import io
import re

from ternlib import Client


def test_protocol_and_tracking_logs(server):
    with Client(server.port) as c:
        c.start_data()
        queued = c.cmd("Subject: logged\r\n\r\nx\r\n.")
        c.cmd("QUIT")
    internal_id = re.search(r"InternalId=(\d+)", queued).group(1)
    assert server.stop() == 0  # flushes the logs
    text = server.log_text("smtp-receive")
    assert "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data" in text
    rows = [r for r in csv.reader(io.StringIO(text)) if r and not r[0].startswith("#")]
    events = [(r[6], r[7]) for r in rows]
    assert events[0] == ("+", "")
    assert ("<", "EHLO contoso.com") in events
    assert ("<", "MAIL FROM:<chris@contoso.com>") in events
    assert (">", "250 2.1.0 Sender OK") in events
    assert (">", queued) in events
    assert events[-1] == ("-", "")
    assert [int(r[3]) for r in rows] == list(range(len(rows)))  # sequence numbers
    assert len({r[2] for r in rows}) == 1  # one session id
    assert rows[0][1] == "default" and rows[0][4].startswith("127.0.0.1:")
    tracking = [r for r in csv.reader(io.StringIO(server.log_text("message-tracking"))) if r and not r[0].startswith("#")]
    assert len(tracking) == 1
    assert tracking[0][1:4] == ["RECEIVE", internal_id, queued.split()[2]]
    assert tracking[0][4:7] == ["chris@contoso.com", "kate@example.test", "127.0.0.1"]
