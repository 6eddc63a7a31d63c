"""SMTP smuggling (SPEC §3): only CR LF . CR LF ends a message. Every variant
below tries to end the message early and start a second one; tern must queue
exactly one message that contains the smuggled text, and answer only once."""
import pytest

from ternlib import Client

VARIANTS = {
    "LF.LF": b"\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CR.CR": b"\r.\r",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.CR": b"\r\n.\r",
}


@pytest.mark.parametrize("name", VARIANTS)
def test_smuggled_end_of_data_is_content(server, name):
    smuggled = (b"mail FROM:<admin@example.test>\r\nrcpt TO:<kate@example.test>\r\ndata\r\n"
                b"Subject: smuggled\r\n\r\nevil\r\n")
    with Client(server.port) as c:
        c.start_data()
        c.send(b"Subject: real\r\n\r\nfirst part" + VARIANTS[name] + smuggled + b"\r\n.\r\n")
        assert c.reply().startswith("250 2.6.0")
        assert c.cmd("NOOP") == "250 2.0.0 OK"  # no stray replies were waiting
    queue = server.queue_json()
    assert len(queue) == 1
    content = server.queue("show", str(queue[0]["id"]), "--content").stdout
    assert "Subject: real" in content
    assert "evil" in content and "mail FROM:<admin@example.test>" in content


def test_bare_lf_lines_are_stored_as_crlf(server):
    with Client(server.port) as c:
        c.start_data()
        c.send(b"Subject: lf\nX: y\n\nbody\n.\r\n\r\n.\r\n")
        assert c.reply().startswith("250 2.6.0")
    q = server.queue_json()[0]
    import json
    content = json.loads(server.queue("show", str(q["id"]), "--json", "--content").stdout)["content"]
    assert "Subject: lf\r\nX: y\r\n\r\nbody\r\n\r\n\r\n" in content
    assert "\n" not in content.replace("\r\n", "")
