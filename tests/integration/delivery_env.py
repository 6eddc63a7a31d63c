"""The world end-to-end delivery tests run in: a dnsmasq with the test
domains' MX and A records, scripted SMTP peers on other loopback addresses
(127.0.0.2, 127.0.0.3, … port 25), and a tern that relays for 127.0.0.0/8,
may deliver to loopback addresses from DNS ([delivery] private_networks),
retries after one second and gives up on silent peers after two.

    def test_x(mta):
        a = mta.address()
        peer = mta.peer(a)
        mta.dns(mx=[("fabrikam.test", "mx1.fabrikam.test", 10)], hosts=[("mx1.fabrikam.test", a)])
        tern = mta.tern()
        mta.send(tern, "chris@example.test", ["kate@fabrikam.test"])
        peer.wait_for_messages(1)
"""
import errno
import json
import os
import pathlib
import re
import smtplib
import subprocess
import time

import pytest

from dns_server import DnsServer
from peers import ScriptedPeer, free_address
from ternlib import TernServer, base_config

HERE = pathlib.Path(__file__).parent
# [delivery] private_networks for peers on 127.0.0.x and ::1.
LOOPBACK = '["127.0.0.0/8", "::1/128"]'
DSN_CHECK = HERE / "dsn_check.py"


def wait_until(predicate, timeout=30, what="condition", interval=0.05):
    """Polls predicate until it returns something true; for state that gives
    no event (a file appearing, the queue changing). Bounded by timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def maildir_tags(folder, subject=re.compile(rb"^Subject: (\S+)$", re.M)):
    """{tag: number of files holding it} over new/ and cur/ of a Maildir, the
    tag being what subject's group 1 matches; a file without one fails."""
    counts = {}
    for sub in ("new", "cur"):
        path = folder / sub
        if not path.is_dir():
            continue
        for f in path.iterdir():
            m = subject.search(f.read_bytes())
            assert m, f"a file without a test subject: {f}"
            tag = m.group(1).decode()
            counts[tag] = counts.get(tag, 0) + 1
    return counts


class Mta:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.taken = []
        self.peers = []
        self.dns_server = None
        self.servers = []

    def address(self):
        """A loopback address whose port 25 is free (127.0.0.2 and up)."""
        host = free_address(25, first=2, avoid=self.taken)
        self.taken.append(host)
        return host

    def peer(self, host=None, **kwargs):
        peer = ScriptedPeer(host or self.address(), **kwargs).start()
        self.peers.append(peer)
        return peer

    def dns(self, mx=(), hosts=()):
        self.dns_server = DnsServer(mx=mx, hosts=hosts).start()
        return self.dns_server

    def tern(self, extra="", delivery="", retry='["1s"]', queue="", listeners=(("default", ""),), name=None,
             private_networks=LOOPBACK):
        """A started tern; extra, delivery and queue add TOML to the top level,
        [delivery] and [queue]. The peers live on loopback addresses, which
        delivery refuses unless [delivery] private_networks lists them:
        private_networks=None leaves the key out (tern's default, none)."""
        dns = f'[dns]\nservers = ["{self.dns_server.address}"]\n' if self.dns_server else ""
        extra = (f'[relay]\nnetworks = ["127.0.0.0/8"]\n[queue]\nretry = {retry}\n{queue}\n' + dns + extra)
        networks = f"private_networks = {private_networks}\n" if private_networks is not None else ""
        given = {line.split("=")[0].strip() for line in delivery.splitlines() if "=" in line}
        defaults = [f'{key} = "{value}"\n' for key, value in
                    (("connect_timeout", "2s"), ("command_timeout", "2s"), ("data_timeout", "5s"))
                    if key not in given]  # a key in `delivery` replaces the default
        delivery = "".join(defaults) + networks + delivery
        server = TernServer(self.tmp / (name or f"tern{len(self.servers)}"), base_config(listeners, extra, delivery))
        self.servers.append(server)
        return server.start()

    @staticmethod
    def send(server, sender, recipients, body="Subject: test\r\n\r\nThis is a test message\r\n",
             mail_options=(), rcpt_options=()):
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as s:
            s.ehlo("client.test")
            refused = s.sendmail(sender, recipients, body, list(mail_options), list(rcpt_options))
        assert refused == {}
        return server.queue_json()

    def close(self):
        for s in self.servers:
            if s.proc and s.proc.poll() is None:
                s.kill()
        for p in self.peers:
            p.stop()
        if self.dns_server:
            self.dns_server.stop()


@pytest.fixture
def mta(tmp_path):
    m = Mta(tmp_path)
    yield m
    m.close()


def maildir_files(server, user):
    new = server.folder / "mail" / user / "new"
    return sorted(new.iterdir()) if new.exists() else []


def wait_for_maildir(server, user, n=1, timeout=30):
    return wait_until(lambda: len(maildir_files(server, user)) >= n and maildir_files(server, user),
                      timeout, f"{n} message(s) in {user}'s Maildir")


def dsn_summary(path):
    """dsn_check.py's JSON summary of a notice file (parsed by Python's email)."""
    out = subprocess.run(["/usr/bin/python3", str(DSN_CHECK), str(path)], capture_output=True, text=True)
    summary = json.loads(out.stdout)
    summary["exit"] = out.returncode
    return summary


def queue_state(server):
    """{recipient address: (status, last_reply)} over the whole queue."""
    return {r["address"]: (r["status"], r.get("last_reply", "")) for q in server.queue_json() for r in q["recipients"]}


def tracking(server):
    import csv
    import io
    rows = csv.reader(io.StringIO(server.log_text("message-tracking")))
    return [r for r in rows if r and not r[0].startswith("#")]


def fill(folder):
    """A ballast file that takes every free block of folder's file system."""
    ballast = folder / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1):
            chunk = b"\0" * size
            try:
                while True:
                    os.write(fd, chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
    finally:
        os.close(fd)
    st = os.statvfs(folder)
    assert st.f_bavail == 0, "the ballast did not fill the file system"
    return ballast
