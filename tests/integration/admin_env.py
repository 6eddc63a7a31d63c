"""A tern with its admin listener (SPEC §5) and mail that stays queued: relay
mail for fabrikam.test goes to a [[route]] next hop on a closed loopback port,
so it is deferred and waits (retry 1h) for the administrator; kate@example.test
is a local Maildir, where notices (DSNs) to her arrive.

    tern = admin_tern(tmp_path)
    q = send_deferred(tern, subject="x")
    status, headers, body = call(tern, "GET", "/api/queue", token=token_of(tern))
"""
import http.client
import json
import smtplib

from delivery_env import queue_state, wait_until
from ternlib import TernServer, base_config, free_port

FABRIKAM = "fabrikam.test"


def admin_tern(folder, admin='address = "127.0.0.1:0"\n', start=True):
    closed = free_port()  # nothing listens there: delivery defers
    extra = (f'[relay]\nnetworks = ["127.0.0.0/8"]\n[queue]\nretry = ["1h"]\n'
             f'[[route]]\ndomain = "{FABRIKAM}"\nnext_hop = "[127.0.0.1]:{closed}"\n')
    if admin is not None:
        extra += "[admin]\n" + admin
    server = TernServer(folder, base_config((("default", ""),), extra, 'connect_timeout = "2s"\n'))
    return server.start() if start else server


def admin_port(tern):
    return tern.ports["admin"]


def token_of(tern):
    return (tern.folder / "var" / "admin.token").read_text().strip()


def call(tern, method, path, token=None, headers=None, body=None, timeout=30):
    """One request on its own connection: (status, {lower-case name: value}, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", admin_port(tern), timeout=timeout)
    try:
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def call_json(tern, method, path, token):
    status, headers, body = call(tern, method, path, token=token)
    assert headers["content-type"].startswith("application/json"), headers
    return status, json.loads(body)


def send_deferred(tern, recipient=f"bob@{FABRIKAM}", subject="test", sender="kate@example.test"):
    """A message from sender to recipient, waited for until its recipient is
    deferred; returns its `tern queue list --json` object."""
    before = {q["id"] for q in tern.queue_json()}
    with smtplib.SMTP("127.0.0.1", tern.port, timeout=30) as s:
        s.ehlo("client.test")
        msg = f"From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: {subject}\r\n\r\nbody\r\n"
        assert s.sendmail(sender, [recipient], msg.encode()) == {}
    [q] = [q for q in tern.queue_json() if q["id"] not in before]
    wait_until(lambda: queue_state(tern).get(recipient, ("",))[0] == "deferred", what=f"{recipient} deferred")
    return q
