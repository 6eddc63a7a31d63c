"""Client load: Postfix's smtp-source, and many idle connections.

smtp_source() runs `smtp-source -l SIZE -m N -s S -f bench@client.test -t RCPT
-M client.test` (one message per connection unless reuse, which adds -d), bounded
in time, and returns its wall time and CPU; warm_up() and smtp_source_during() run
it before and during a measurement, smtp_source_errors() and record_injection()
put what it said into a run's result. open_idle() opens connections with
non-blocking sockets (512 connects in flight) and reads every 220 banner.
"""

from __future__ import annotations

import errno
import resource
import selectors
import socket
import subprocess
import threading
import time

from cleanup import BenchError
from servers import HOST, SMTP_SOURCE

SENDER = "bench@client.test"
RECIPIENT = "sink@example.test"      # a mailbox of the server: accept benchmark
RELAY_RECIPIENT = "sink@relay.test"  # a domain that is not the server's: relay benchmark
HELO = "client.test"


def smtp_source_cmd(port: int | str, messages: int | str, sessions: int | str, size: int, reuse: bool,
                    recipient: str = RECIPIENT) -> list[str]:
    cmd = [SMTP_SOURCE, "-l", str(size), "-m", str(messages), "-s", str(sessions),
           "-f", SENDER, "-t", recipient, "-M", HELO]
    if reuse:
        cmd.append("-d")
    cmd.append(f"{HOST}:{port}")
    return cmd


def smtp_source(port: int, messages: int, sessions: int, size: int, reuse: bool,
                recipient: str = RECIPIENT) -> dict:
    cmd = smtp_source_cmd(port, messages, sessions, size, reuse, recipient)
    timeout = 120 + messages / 50.0
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        rc, err = p.returncode, (p.stdout + p.stderr).strip()
    except subprocess.TimeoutExpired as e:
        rc, err = -1, f"smtp-source timed out after {timeout:.0f}s; " + str(e.stderr or "")
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cmd": " ".join(cmd), "rc": rc, "wall_s": wall,
            "client_cpu_s": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
            "output": err[-2000:]}


def smtp_source_errors(res: dict, r: dict) -> None:
    """A failed or talkative smtp-source run is an error of the run."""
    if r["rc"] != 0:
        res["errors"].append(f"smtp-source rc={r['rc']}: {r['output']}")
    elif r["output"]:
        res["errors"].append(f"smtp-source said: {r['output']}")


def warm_up(res: dict, port: int, warmup: int, sessions: int, args, recipient: str = RECIPIENT) -> None:
    """The warm-up messages (args.size, args.reuse); a failed smtp-source is an error of the run."""
    w = smtp_source(port, warmup, sessions, args.size, args.reuse, recipient)
    if w["rc"] != 0:
        res["errors"].append(f"warm-up smtp-source rc={w['rc']}: {w['output']}")


def smtp_source_during(port: int, messages: int, sessions: int, args, recipient: str,
                       wait) -> tuple[dict, float, object, float]:
    """Runs smtp_source() in a thread while wait(limit) waits for the last message to
    arrive (limit = smtp-source's own time limit). Returns smtp-source's result ({}
    if it did not finish), when it started, what wait() returned, and the limit."""
    r: dict = {}
    t0 = time.monotonic()
    injector = threading.Thread(target=lambda: r.update(smtp_source(
        port, messages, sessions, args.size, args.reuse, recipient)), name="smtp-source")
    injector.start()
    limit = 120 + messages / 50.0
    waited = wait(limit)
    injector.join(timeout=limit + 60)       # smtp-source has its own time limit
    return r, t0, waited, limit


def record_injection(res: dict, r: dict) -> None:
    """smtp-source's command, exit code, output and wall time of a smtp_source_during() run."""
    if not r:
        raise BenchError("smtp-source did not finish")
    res["inject_wall_s"] = r["wall_s"]
    res["client_cpu_s"] = r["client_cpu_s"]
    res["cmd"], res["rc"], res["output"] = r["cmd"], r["rc"], r["output"]
    smtp_source_errors(res, r)


def open_idle(port: int, n: int, timeout: float, socks: dict[int, socket.socket]) -> tuple[list, dict]:
    """Opens n connections and reads each banner, within timeout seconds. Every socket
    opened is in `socks` (fd -> socket) for the caller to close. Returns the sockets
    that got a 220 and a count of failures by reason."""
    sel = selectors.DefaultSelector()
    bufs: dict[int, bytes] = {}
    connecting: set[int] = set()
    idle: list[socket.socket] = []
    failures: dict[str, int] = {}
    started = 0
    in_flight_max = 512
    deadline = time.monotonic() + timeout

    def fail(fd: int, why: str) -> None:
        failures[why] = failures.get(why, 0) + 1
        s = socks.pop(fd)
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
        connecting.discard(fd)
        bufs.pop(fd, None)
        s.close()

    try:
        while len(idle) + sum(failures.values()) < n and time.monotonic() < deadline:
            while started < n and len(socks) - len(idle) < in_flight_max:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                started += 1
                rc = s.connect_ex((HOST, port))
                fd = s.fileno()
                socks[fd] = s
                if rc in (0, errno.EINPROGRESS):
                    connecting.add(fd)
                    bufs[fd] = b""
                    sel.register(s, selectors.EVENT_WRITE)
                else:
                    why = errno.errorcode.get(rc, str(rc))
                    failures[why] = failures.get(why, 0) + 1
                    socks.pop(fd)
                    s.close()
            for key, _ev in sel.select(timeout=min(1.0, max(0.0, deadline - time.monotonic()))):
                s = key.fileobj
                fd = s.fileno()
                if fd in connecting:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        fail(fd, "connect " + errno.errorcode.get(err, str(err)))
                        continue
                    connecting.discard(fd)
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                try:
                    chunk = s.recv(4096)
                except OSError as e:
                    fail(fd, "recv " + errno.errorcode.get(e.errno or 0, str(e)))
                    continue
                if not chunk:
                    fail(fd, "closed before banner")
                    continue
                bufs[fd] += chunk
                if b"\n" in bufs[fd]:
                    if not bufs[fd].startswith(b"220"):
                        fail(fd, "banner " + bufs[fd][:40].decode("ascii", "replace").strip())
                        continue
                    sel.unregister(s)
                    bufs.pop(fd, None)
                    idle.append(s)
    finally:
        sel.close()
    return idle, failures
