"""The admin listener (SPEC §5, issue 12): off unless configured; a token
file created 0600; every /api/ call without the token answered 401; the
queue through the API is the queue `tern queue list --json` shows, and its
actions are the scheduler's; hostile HTTP (malformed, huge, slow, path
tricks, concurrent actions on one message) is bounded and never hurts."""
import json
import os
import pwd
import re
import socket
import stat
import subprocess
import threading
import time

from admin_env import admin_port, admin_tern, call, call_json, send_deferred, token_of
from delivery_env import dsn_summary, maildir_files, wait_for_maildir, wait_until
from ternlib import TERN, TERN_USER

API_CALLS = [("GET", "/api/queue"), ("GET", "/api/queue/1"), ("POST", "/api/queue/1/retry"),
             ("POST", "/api/queue/1/bounce"), ("DELETE", "/api/queue/1"),
             ("GET", "/api/trail?id=1"), ("GET", "/api/trail?address=kate%40example.test"),
             ("GET", "/api/nothing")]


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def raw(tern, data, timeout=30):
    """Sends data on a new connection and reads until the server closes it
    (bounded by timeout): the bytes received, and whether it was closed."""
    with socket.create_connection(("127.0.0.1", admin_port(tern)), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return got, True
            except socket.timeout:
                return got, False
            if not chunk:
                return got, True
            got += chunk
        return got, False


def status_of(response):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", response)
    return int(m.group(1)) if m else None


def test_off_by_default(tmp_path):
    tern = admin_tern(tmp_path / "t", admin=None)
    assert "admin" not in tern.ports
    assert not any("admin" in line for line in tern.stderr_lines)
    assert not (tern.folder / "var" / "admin.token").exists()
    # [admin] without an address stays off too
    off = admin_tern(tmp_path / "u", admin='token_file = "t.token"\n')
    assert "admin" not in off.ports
    assert tern.stop() == 0 and off.stop() == 0


def test_token_file_and_401_on_every_api_route(tmp_path):
    tern = admin_tern(tmp_path / "t")
    path = tern.folder / "var" / "admin.token"
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    if os.geteuid() == 0:  # created as root, given to the user tern runs as
        assert st.st_uid == pwd.getpwnam(TERN_USER).pw_uid
    token = token_of(tern)
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    wrong = ("0" if token[0] != "0" else "1") + token[1:]
    for method, target in API_CALLS:
        for headers in ({}, {"Authorization": "Bearer " + wrong}, {"Authorization": "Bearer " + token[:-1]},
                        {"Authorization": "Basic " + token}, {"Authorization": token}):
            status, h, body = call(tern, method, target, headers=headers)
            assert status == 401, (method, target, headers, status)
            assert h["www-authenticate"].startswith("Bearer"), h
            assert "error" in json.loads(body)
    # the same token again on a restart: the file is read, not replaced
    assert tern.stop() == 0
    tern.start()
    assert token_of(tern) == token
    status, _, _ = call(tern, "GET", "/api/queue", token=token)
    assert status == 200
    # no token needed for the metrics and the page, which holds no data
    status, h, _ = call(tern, "GET", "/metrics")
    assert status == 200 and h["content-type"].startswith("text/plain; version=0.0.4"), h
    status, h, body = call(tern, "GET", "/")
    assert status == 200 and h["content-type"].startswith("text/html")
    assert "default-src 'self'" in h["content-security-policy"] and h["x-frame-options"] == "DENY"
    assert b"<script" in body and b"<script>" not in body  # its script is a file of its own
    for target in ("/viewer.js", "/viewer.css", "/metrics", "/api/queue"):
        status, h, _ = call(tern, "GET", target, token=token)
        assert status == 200, target
        assert h["x-content-type-options"] == "nosniff" and h["cache-control"] == "no-store", (target, h)
    assert tern.stop() == 0


def test_a_token_file_readable_by_others_is_refused(tmp_path):
    tern = admin_tern(tmp_path / "t", start=False)
    (tern.folder / "var").mkdir()
    token = tern.folder / "var" / "admin.token"
    token.write_text("a" * 64 + "\n")
    token.chmod(0o644)
    try:
        tern.start()
        raise AssertionError("tern serve started with a token file others can read")
    except RuntimeError as e:
        assert "chmod 600" in str(e) and str(token) in str(e), str(e)


def test_queue_through_the_api_agrees_with_tern_queue(tmp_path):
    tern = admin_tern(tmp_path / "t")
    token = token_of(tern)
    first = send_deferred(tern, "one@fabrikam.test", subject="first")
    second = send_deferred(tern, "two@fabrikam.test", subject="second")
    status, listed = call_json(tern, "GET", "/api/queue", token)
    assert status == 200 and listed == tern.queue_json()
    assert {q["id"] for q in listed} == {first["id"], second["id"]}

    status, shown = call_json(tern, "GET", f"/api/queue/{first['id']}", token)
    assert status == 200 and shown["id"] == first["id"] and shown["subject"] == "first"
    assert shown["recipients"][0]["address"] == "one@fabrikam.test"
    assert shown["recipients"][0]["status"] == "deferred" and shown["recipients"][0]["last_reply"]
    assert "Subject: first\r\n" in shown["headers"] and "body" not in shown["headers"]

    status, r = call_json(tern, "POST", f"/api/queue/{first['id']}/retry", token)
    assert status == 200 and "will be tried now" in r["result"], r
    wait_until(lambda: next(q for q in tern.queue_json() if q["id"] == first["id"])["recipients"][0]["attempts"] >= 2,
               what="the retried attempt")

    status, r = call_json(tern, "POST", f"/api/queue/{first['id']}/bounce", token)
    assert status == 200 and "returned to kate@example.test" in r["result"], r
    [notice] = wait_for_maildir(tern, "kate")
    d = dsn_summary(notice)
    assert d["recipients"][0]["action"] == "failed" and d["original_subject"] == "first"

    status, r = call_json(tern, "DELETE", f"/api/queue/{second['id']}", token)
    assert status == 200 and "deleted" in r["result"], r
    wait_until(lambda: tern.queue_json() == [], what="an empty queue")
    status, listed = call_json(tern, "GET", "/api/queue", token)
    assert status == 200 and listed == []
    assert len(maildir_files(tern, "kate")) == 1  # no notice for the deleted one

    for method, target in (("DELETE", f"/api/queue/{second['id']}"), ("GET", "/api/queue/99999"),
                           ("POST", "/api/queue/99999/bounce"), ("POST", "/api/queue/99999/retry"),
                           ("GET", "/api/queue/abc")):
        status, r = call_json(tern, method, target, token)
        assert status == 404 and "no message with InternalId" in r["error"], (target, r)
    # the trail: as `tern trail --json` answers it
    def trail():
        status, r = call_json(tern, "GET", f"/api/trail?id={first['id']}", token)
        assert status == 200, r
        return r
    # the trail is written behind the deliveries (a batch every few ms): wait for the FAIL
    wait_until(lambda: any(e["event"] == "FAIL" for e in trail()["events"]), what="FAIL in the trail")
    r = trail()
    cli = subprocess.run([TERN, "trail", str(first["id"]), "--json", "--config", str(tern.config)],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and json.loads(cli.stdout) == r, cli.stderr
    events = [(e["event"], e["recipient"]) for e in r["events"]]
    assert events[0] == ("RECEIVE", "one@fabrikam.test") and ("FAIL", "one@fabrikam.test") in events, events
    status, r = call_json(tern, "GET", "/api/trail?address=ONE%40fabrikam.test", token)
    assert status == 200 and {e["id"] for e in r["events"]} == {first["id"]}, r
    for target in ("/api/trail", "/api/trail?id=1&address=a%40b", "/api/trail?id=x"):
        assert call(tern, "GET", target, token=token)[0] == 400, target
    # wrong methods: 405 with Allow
    for method, target, allow in (("PUT", "/api/queue", "GET"), ("GET", "/api/queue/1/bounce", "POST"),
                                  ("POST", "/api/queue/1", "GET, DELETE"), ("POST", "/metrics", "GET, HEAD"),
                                  ("DELETE", "/", "GET, HEAD")):
        status, h, _ = call(tern, method, target, token=token)
        assert status == 405 and h["allow"] == allow, (method, target, status, h)
    assert call(tern, "GET", "/nothing")[0] == 404
    assert tern.stop() == 0


def test_malformed_huge_and_slow_requests(tmp_path):
    tern = admin_tern(tmp_path / "t")
    token = token_of(tern)
    pid = tern.proc.pid
    # malformed: 400 and closed
    for garbage in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /\x00 HTTP/1.1\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost x\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):
        got, closed = raw(tern, garbage)
        assert status_of(got) == 400 and closed, (garbage, got)
    # a body over 64 KB: 413
    got, closed = raw(tern, b"POST /api/queue/1/retry HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                      + token.encode() + b"\r\nContent-Length: 100000\r\n\r\n")
    assert status_of(got) == 413 and closed, got
    # a 10 MB header: 431 (or the connection closed), the memory stays bounded
    before = rss_kb(pid)
    huge = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (10 * 1024 * 1024) + b"\r\n\r\n"
    got, closed = raw(tern, huge)
    assert closed and (got == b"" or status_of(got) == 431), got[:200]
    assert rss_kb(pid) - before < 20 * 1024, (before, rss_kb(pid))
    assert call(tern, "GET", "/metrics")[0] == 200  # still answering
    # slowloris: a header line now and then; closed (408) within the 10 s bound
    with socket.create_connection(("127.0.0.1", admin_port(tern)), timeout=30) as s:
        s.sendall(b"GET /api/queue HTTP/1.1\r\nHost: x\r\n")
        stop = threading.Event()

        def trickle():
            while not stop.wait(0.5):
                try:
                    s.sendall(b"X-Slow: y\r\n")
                except OSError:
                    return

        t = threading.Thread(target=trickle)
        t.start()
        got = b""
        try:
            deadline = time.monotonic() + 30
            closed = False
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(4096)
                except ConnectionResetError:
                    closed = True
                    break
                except socket.timeout:
                    break
                if not chunk:
                    closed = True
                    break
                got += chunk
        finally:
            stop.set()
            t.join()
        assert closed, "the slow request was not closed within 30 s"
        assert got == b"" or status_of(got) == 408, got
    # a request started and left silent: 408 and closed
    got, closed = raw(tern, b"GET /metrics HTTP/1.1\r\nHost:")
    assert closed and status_of(got) == 408, got
    # keep-alive and pipelining still work: two requests, two answers, in order
    got, closed = raw(tern, b"GET /viewer.css HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", got)] == [200, 404] and closed, got[:300]
    assert tern.stop() == 0


def test_path_tricks_never_reach_anything(tmp_path):
    tern = admin_tern(tmp_path / "t")
    token = token_of(tern)
    q = send_deferred(tern, "one@fabrikam.test")
    tricks = ["/api/queue/../../etc/passwd", "/api/queue/%2e%2e/%2e%2e/etc/passwd", "/api/queue/..%2f..%2fetc",
              "//api/queue", "/api//queue", "/api/queue/", "/api/queue/./", f"/api/queue/{q['id']}/../..",
              f"/api/queue/{q['id']}%00", f"/api/queue/{q['id']}%2fbounce", "/api/queue/%2E%2E",
              "/..", "/%2e%2e/%2e%2e/etc/passwd", "/viewer.js/../../../etc/passwd", "/.%2e/etc/passwd",
              "/api/queue/../queue", "/etc/passwd", "/index.html/..", "/viewer.js%00.css", "/%",
              f"/api/queue/+{q['id']}", f"/api/queue/-{q['id']}", f"/api/queue/0x{q['id']:x}"]
    for target in tricks:
        for method in ("GET", "POST", "DELETE"):
            got, _ = raw(tern, f"{method} {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                               f"Connection: close\r\n\r\n".encode())
            assert status_of(got) in (400, 404, 405), (method, target, got[:200])
            assert b"root:" not in got
    got, _ = raw(tern, b"GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(got) == 400, got
    got, _ = raw(tern, b"GET http://evil.test/api/queue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(got) == 400, got
    assert [m["id"] for m in tern.queue_json()] == [q["id"]]  # nothing was acted on
    assert tern.stop() == 0


def test_concurrent_actions_on_one_message(tmp_path):
    tern = admin_tern(tmp_path / "t")
    token = token_of(tern)
    q = send_deferred(tern, "one@fabrikam.test", subject="raced")
    barrier = threading.Barrier(20)
    results = [None] * 20

    def act(i):
        method, target = (("POST", f"/api/queue/{q['id']}/bounce") if i % 2 == 0
                          else ("DELETE", f"/api/queue/{q['id']}"))
        barrier.wait(timeout=30)
        status, _, body = call(tern, method, target, token=token)
        results[i] = (status, json.loads(body))

    threads = [threading.Thread(target=act, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(r is not None for r in results), results
    assert all(s in (200, 404, 409) for s, _ in results), results
    done = [r["result"] for s, r in results if s == 200]
    # Removed at once by exactly one call; or, when the attempt that deferred
    # it had not quite ended, each call before the end changed what that
    # attempt does last (the scheduler's "when its current attempt ends").
    now = [r for r in done if "when its current attempt ends" not in r]
    later = [r for r in done if "when its current attempt ends" in r]
    assert len(now) + (1 if later else 0) == 1, results
    if now:
        bounced = "returned to" in now[0]
        assert bounced or "deleted" in now[0], done
    wait_until(lambda: tern.queue_json() == [], what="an empty queue")  # the notice, if any, delivered
    notices = len(maildir_files(tern, "kate"))
    assert notices == (1 if bounced else 0) if now else notices <= 1
    assert call_json(tern, "GET", "/api/queue", token) == (200, [])
    assert tern.stop() == 0


def test_connections_are_capped(tmp_path):
    tern = admin_tern(tmp_path / "t")
    held = []
    try:
        for _ in range(64):  # each answered once, then kept open (keep-alive)
            s = socket.create_connection(("127.0.0.1", admin_port(tern)), timeout=30)
            s.sendall(b"GET /viewer.css HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while b"\r\n\r\n" not in got:
                chunk = s.recv(65536)
                assert chunk, got
                got += chunk
            assert status_of(got) == 200
            held.append(s)
        got, closed = raw(tern, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert got == b"" and closed  # the 65th is closed unanswered
    finally:
        for s in held:
            s.close()
    # the slots come back as the connections end
    wait_until(lambda: raw(tern, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0]
               .startswith(b"HTTP/1.1 200"), what="an answer once the connections are gone")
    assert tern.stop() == 0
