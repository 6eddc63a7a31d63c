"""Connection limits and the pools behind them (issue 8, item 4), against a
real `tern serve`: at most max_connections_per_source connections from one
client IP on a listener, counted across every event loop, then SPEC §3's
421 4.3.2; a total per listener; and password checks on threads of their own,
so an AUTH flood does not hold up local delivery."""
import base64
import ctypes
import csv
import io
import threading

import pytest

from delivery_env import wait_for_maildir
from ternlib import Client, TernServer, base_config

PER_SOURCE = ("421 4.3.2 The maximum number of concurrent connections has exceeded a limit, "
              "closing transmission channel")
PER_LISTENER = ("421 4.3.2 The maximum number of concurrent server connections has exceeded a "
                "limit, closing transmission channel")


@pytest.fixture
def start_tern(tmp_path):
    """start_tern(listener_toml, top=..., delivery=..., extra=...) → a started
    TernServer; top is TOML for the top level (e.g. threads = 4)."""
    servers = []

    def start(listener="", top="", delivery=None, extra=""):
        text = top + "\n" + base_config([("default", listener)], extra, delivery)
        server = TernServer(tmp_path / f"tern{len(servers)}", text)
        servers.append(server)
        return server.start()

    yield start
    for s in servers:
        if s.proc and s.proc.poll() is None:
            s.kill()


def greeted(port, source=None):
    c = Client(port, source=source)
    assert c.reply().startswith("220 mail.example.test "), "not greeted"
    return c


def refused_with(port, source=None):
    """Connects, returns the one reply, and checks the server then closes."""
    with Client(port, source=source) as c:
        reply = c.reply()
        assert c.file.read() == b""  # closed after the reply, nothing else sent
        return reply


def protocol_rows(server):
    rows = csv.reader(io.StringIO(server.log_text("smtp-receive")))
    return [r for r in rows if r and not r[0].startswith("#")]


def test_twenty_first_connection_from_one_address_gets_421(start_tern):
    # Four event loops: the kernel spreads the connections over them, and the
    # count still is one count per address.
    server = start_tern(top="threads = 4")
    clients = [greeted(server.port) for _ in range(20)]
    try:
        assert refused_with(server.port) == PER_SOURCE
        # The admitted ones are untouched, and another address is served.
        assert clients[0].cmd("EHLO contoso.com").startswith("250-mail.example.test Hello")
        with greeted(server.port, source="127.0.0.2") as other:
            assert other.cmd("EHLO contoso.com").startswith("250-mail.example.test Hello [127.0.0.2]")
            assert other.cmd("QUIT").startswith("221 ")
        assert refused_with(server.port) == PER_SOURCE
    finally:
        for c in clients:
            c.close()
    assert server.stop() == 0
    rows = protocol_rows(server)
    refused = {r[2] for r in rows if r[6] == ">" and r[7] == PER_SOURCE}
    assert len(refused) == 2
    for session in refused:
        events = [(r[6], r[7]) for r in rows if r[2] == session]
        assert events[0] == ("+", "") and events[-1] == ("-", "")
        assert any(kind == "*" and "max_connections_per_source" in text for kind, text in events)


def test_a_closed_connection_frees_its_place(start_tern):
    # One event loop: the server has counted the close before it accepts again.
    server = start_tern(listener="max_connections_per_source = 2", top="threads = 1")
    first, second = greeted(server.port), greeted(server.port)
    assert refused_with(server.port) == PER_SOURCE
    assert first.cmd("QUIT").startswith("221 ")
    assert first.file.read() == b""  # the server has closed it
    first.close()
    with greeted(server.port) as third:
        assert third.cmd("EHLO contoso.com").startswith("250-")
        assert refused_with(server.port) == PER_SOURCE
    second.close()


def test_listener_total_limit(start_tern):
    server = start_tern(listener="max_connections = 3\nmax_connections_per_source = 100")
    clients = [greeted(server.port, source=f"127.0.0.{i}") for i in (1, 2, 3)]
    try:
        assert refused_with(server.port, source="127.0.0.4") == PER_LISTENER
        assert refused_with(server.port) == PER_LISTENER
    finally:
        for c in clients:
            c.close()


def test_bad_limit_is_a_config_error_naming_the_key(tmp_path):
    server = TernServer(tmp_path, base_config([("default", "max_connections_per_source = 0")]))
    with pytest.raises(RuntimeError) as e:
        server.start()
    assert "listener[0].max_connections_per_source" in str(e.value)
    assert "tern.toml" in str(e.value)


# --- AUTH flood against local delivery ---

PASSWORD = "right-password"


def slow_hash(password):
    """A SHA512-CRYPT hash with many rounds (crypt(3) from libxcrypt), so that
    every password check keeps a thread busy for a noticeable time."""
    libcrypt = ctypes.CDLL("libcrypt.so.1")
    libcrypt.crypt.restype = ctypes.c_char_p
    libcrypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    out = libcrypt.crypt(password.encode(), b"$6$rounds=3000000$floodtest$")
    assert out and out.startswith(b"$6$rounds=3000000$"), out
    return "{SHA512-CRYPT}" + out.decode()


def auth_plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


COUNTS_LOCK = threading.Lock()


def flood(port, source, stop, counts, under_way, total):
    """Wrong passwords, one after the other, until stop is set. under_way is
    set once every connection has asked and a few checks are done: from then
    on the password threads have a long backlog."""
    try:
        with Client(port, source=source, timeout=300) as c:
            c.reply()
            c.cmd("EHLO flood.test")
            first = True
            while not stop.is_set():
                c.send("AUTH PLAIN " + auth_plain("chris@example.test", "wrong") + "\r\n")
                if first:
                    with COUNTS_LOCK:
                        counts["asked"] += 1
                    first = False
                reply = c.reply()
                with COUNTS_LOCK:
                    counts["failed" if reply.startswith("535 ") else "other"] += 1
                    if counts["asked"] == total and counts["failed"] >= 4:
                        under_way.set()
                if not reply.startswith("535 "):
                    return
    except (OSError, ConnectionError):
        return


def test_auth_flood_does_not_hold_up_local_delivery(start_tern):
    server = start_tern(
        listener='auth = "optional"\nallow_plaintext_auth = true\nmax_connections_per_source = 10',
        delivery="",
        extra=f'[[mailbox]]\naddress = "chris@example.test"\nmaildir = "mail/chris"\n'
              f'password = "{slow_hash(PASSWORD)}"\n')
    stop, under_way = threading.Event(), threading.Event()
    counts = {"asked": 0, "failed": 0, "other": 0}
    # 120 connections from 12 addresses, each check about a second of a
    # thread: a minute of work queued for two threads.
    threads = [threading.Thread(target=flood,
                                args=(server.port, f"127.0.0.{10 + a}", stop, counts, under_way, 120))
               for a in range(12) for _ in range(10)]
    for t in threads:
        t.start()
    try:
        assert under_way.wait(120), counts
        with Client(server.port) as c:
            c.start_data()
            assert c.cmd("Subject: during the flood\r\n\r\nstill delivered\r\n.").startswith("250 2.6.0 ")
        # Generous: delivery takes milliseconds when it does not queue behind
        # the password checks, and minutes when it does.
        [delivered] = wait_for_maildir(server, "kate", timeout=20)
        assert b"still delivered" in delivered.read_bytes()
        assert counts["other"] == 0, counts
    finally:
        stop.set()
        server.kill()
        for t in threads:
            t.join(timeout=30)
