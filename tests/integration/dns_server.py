"""A throw-away DNS server for integration tests: dnsmasq on 127.0.0.1.

DnsServer starts /usr/sbin/dnsmasq on a free UDP+TCP port of 127.0.0.1 serving
exactly the records it is given and nothing else: no upstream servers, no
/etc/hosts, no system configuration. Every name under a `local` zone (default
"test") that has no record answers NXDOMAIN; a name that has records but not
of the asked type answers NOERROR with no answer (RFC 2308 NODATA); a name
outside the local zones gets REFUSED (there is no upstream).

    with DnsServer(mx=[("example.test", "mx1.example.test", 10)],
                   hosts=[("mx1.example.test", "127.0.0.2")]) as dns:
        run_tern("mx", "example.test", "--dns-server", dns.address)

start() returns only once dnsmasq answers a real query (no sleeping); stop()
terminates it. MX and address records get the TTL `ttl` (dnsmasq's
--local-ttl); a host record may carry its own TTL as a third element.

A null MX (RFC 7505) is `("nullmx.test", ".", 0)`: dnsmasq 2.90 publishes
`--mx-host=nullmx.test,.,0` as an MX whose exchange is the root name.

TxtDnsServer adds TXT records (SPF, DKIM keys, DMARC policies).

Also here: blackhole() — a bound UDP/TCP port that never answers, for
timeout tests — and query(), a minimal DNS client (RFC 1035 §4.1) used to
check readiness without depending on dnspython.
"""

import contextlib
import os
import random
import socket
import struct
import subprocess
import tempfile
import time

DNSMASQ = os.environ.get("DNSMASQ", "/usr/sbin/dnsmasq")

TYPE_A, TYPE_MX, TYPE_AAAA = 1, 15, 28
RCODE_NOERROR, RCODE_SERVFAIL, RCODE_NXDOMAIN = 0, 2, 3


def free_port(host="127.0.0.1"):
    """A port free for both UDP and TCP on host at the time of the call."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free UDP+TCP port on " + host)


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\x00"


def query(host, port, name, qtype=TYPE_A, timeout=1.0):
    """Sends one UDP query; returns (rcode, answer count) or raises
    socket.timeout / OSError when nothing answers."""
    qid = random.randrange(1 << 16)
    packet = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD, one question
    packet += encode_name(name) + struct.pack("!HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.send(packet)
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            reply = s.recv(4096)
            if len(reply) >= 12 and struct.unpack("!H", reply[:2])[0] == qid:
                _, flags, _, ancount, _, _ = struct.unpack("!HHHHHH", reply[:12])
                return flags & 0x000F, ancount


class DnsServer:
    """dnsmasq with explicit records. mx: (domain, exchange, preference);
    hosts: (name, address[, ttl]) with IPv4 or IPv6 addresses."""

    def __init__(self, mx=(), hosts=(), local=("test",), ttl=3600, host="127.0.0.1"):
        self.mx = list(mx)
        self.hosts = list(hosts)
        self.local = list(local)
        self.ttl = ttl
        self.host = host
        self.port = None
        self.process = None
        self._dir = None

    @property
    def address(self):
        """"127.0.0.1:PORT", the form of --dns-server and [dns] servers."""
        return f"{self.host}:{self.port}"

    def _arguments(self, port):
        args = [
            DNSMASQ,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            f"--listen-address={self.host}",
            f"--port={port}",
            f"--pid-file={os.path.join(self._dir.name, 'dnsmasq.pid')}",
            f"--local-ttl={self.ttl}",
            "--log-facility=-",
        ]
        args += [f"--local=/{zone}/" for zone in self.local]
        args += [f"--mx-host={d},{x},{p}" for d, x, p in self.mx]
        args += ["--host-record=" + ",".join(str(part) for part in h) for h in self.hosts]
        return args

    def start(self, timeout=10.0):
        self._dir = tempfile.TemporaryDirectory(prefix="tern-dns-")
        last_error = ""
        for _ in range(5):  # another process may take the port between probe and bind
            port = free_port(self.host)
            # dnsmasq logs to a file, not a pipe nobody reads (a full pipe blocks it).
            with open(self._log_path(), "wb") as log:
                self.process = subprocess.Popen(
                    self._arguments(port), stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=log)
            self.port = port
            if self._wait_ready(timeout):
                return self
            last_error = self._reap()
        self._dir.cleanup()
        raise RuntimeError("dnsmasq did not start: " + last_error)

    def _wait_ready(self, timeout):
        """True once dnsmasq answers a query; False if it exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                query(self.host, self.port, "ready.invalid", TYPE_A, timeout=0.2)
                return True
            except OSError:  # timeout, or refused: not listening yet
                continue
        return False

    def _log_path(self):
        return os.path.join(self._dir.name, "dnsmasq.log")

    def log(self):
        """What dnsmasq wrote to stderr, for failure messages."""
        with open(self._log_path(), "rb") as f:
            return f.read().decode(errors="replace").strip()

    def _reap(self):
        """Stops dnsmasq; returns its log."""
        if self.process is None:
            return ""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        return self.log()

    def stop(self):
        self._reap()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@contextlib.contextmanager
def blackhole(host="127.0.0.1"):
    """A UDP and TCP port that takes queries and never answers; yields
    "host:port". For timeout tests: the client must give up on its own."""
    port = free_port(host)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        udp.bind((host, port))
        tcp.bind((host, port))
        tcp.listen(8)
        yield f"{host}:{port}"


class TxtDnsServer(DnsServer):
    """dnsmasq with TXT records too: one --txt-record option per record; a
    comma in the text starts another character-string of the same record."""

    def __init__(self, txt=(), **kwargs):
        super().__init__(**kwargs)
        self.txt = list(txt)

    def _arguments(self, port):
        return super()._arguments(port) + [f"--txt-record={name},{text}" for name, text in self.txt]
