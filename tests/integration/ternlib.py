"""Helpers for tern's integration tests: start a real `tern serve` on free
loopback ports with a configuration written for the test, talk SMTP to it
line by line (or push mail at it until told to stop), and read its queue with
the real `tern queue` command.

Nothing here sleeps to synchronise: the server is ready when it has printed
`tern: ready` on stderr, and replies are read from the socket.
"""
import json
import os
import pathlib
import pwd
import re
import signal
import socket
import subprocess
import tempfile
import textwrap
import time

TERN = os.environ.get("TERN_BINARY", str(pathlib.Path(__file__).resolve().parents[2] / "build" / "tern"))
HOSTNAME = "mail.example.test"
QUEUED = re.compile(r"250 2\.6\.0 <[^>]+> \[InternalId=(\d+),")


def base_config(listeners, extra="", delivery=None):
    """A configuration with example.test accepted and kate@/postmaster@ mailboxes.

    delivery: the body of the [delivery] table; None holds all mail in the
    queue (enabled = false), for tests that look at what was queued.
    """
    text = textwrap.dedent(f"""\
        hostname = "{HOSTNAME}"
        [spool]
        path = "spool"
        min_free = "1MB"
        [domains]
        accepted = ["example.test"]
        [[mailbox]]
        address = "kate@example.test"
        maildir = "mail/kate"
        [[mailbox]]
        address = "postmaster@example.test"
        maildir = "mail/postmaster"
        [log]
        directory = "log"
        """)
    text += "[delivery]\n" + ("enabled = false\n" if delivery is None else delivery) + "\n"
    if "[sender_auth]" not in extra:  # SPF/DKIM/DMARC would ask the system's DNS: tests set it
        text += "[sender_auth]\nverify = false\n"
    text += extra + "\n"
    for name, body in listeners:
        text += f'[[listener]]\nname = "{name}"\naddress = "127.0.0.1:0"\n{body}\n'
    return text


TERN_USER = "tern"


def tern_user_missing():
    """Why tests cannot run as root: the account tern serve drops to is missing."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(TERN_USER)
        return None
    except KeyError:
        return (f"tern serve started as root drops to user {TERN_USER!r}, which does not exist: "
                "run scripts/install-deps.sh as root (or useradd --system --no-create-home "
                f"--shell /usr/sbin/nologin {TERN_USER})")


def make_traversable(folder):
    """Run as root, tern serve works as user tern: it must be able to search
    folder and its ancestors inside the temp folder (pytest makes them 0700).
    o+x only, no read: tern lists none of them."""
    if os.geteuid() != 0:
        return
    folder = pathlib.Path(folder).resolve()
    top = pathlib.Path(tempfile.gettempdir()).resolve()
    for p in [folder, *folder.parents]:
        if p == top or top not in p.parents:
            break
        mode = p.stat().st_mode
        if mode & 0o001 == 0:
            p.chmod((mode & 0o7777) | 0o001)


class TernServer:
    """A `tern serve` process with its own folder, config, spool and logs."""

    def __init__(self, folder, config_text):
        self.folder = pathlib.Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        make_traversable(self.folder)
        self.config = self.folder / "tern.toml"
        self.config.write_text(config_text)
        self.proc = None
        self.ports = {}
        self.stderr_lines = []

    def start(self, timeout=20, env=None):
        """env: extra environment variables for this start only."""
        self.ports = {}
        self.stderr_lines = []
        self.proc = subprocess.Popen([TERN, "serve", "--config", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("tern serve exited: " + "".join(self.stderr_lines))
            self.stderr_lines.append(line)
            parts = line.split()
            if line.startswith("tern: listening"):
                host, _, port = parts[3].rpartition(":")
                self.ports[parts[2]] = int(port)
            if line.startswith("tern: ready"):
                return self
        raise RuntimeError("tern serve did not get ready")

    @property
    def port(self):
        return next(iter(self.ports.values()))

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code and the rest of stderr."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rest = self.proc.communicate(timeout=timeout)[1]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rest = self.proc.communicate()[1]
        self.stderr_lines.append(rest or "")
        return self.proc.returncode

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def queue(self, *args):
        out = subprocess.run([TERN, "queue", *args, "--config", str(self.config)],
                             capture_output=True, text=True, timeout=60)
        return out

    def queue_json(self):
        out = self.queue("list", "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def log_text(self, prefix):
        return "".join(p.read_text() for p in sorted((self.folder / "log").glob(prefix + "*.log")))


def sanitized():
    """True when TERN is an AddressSanitizer build (its memory use is larger)."""
    out = subprocess.run([TERN, "version"], capture_output=True, text=True, timeout=30)
    return "AddressSanitizer" in out.stdout


class Client:
    """An SMTP client that shows replies exactly as they come, like Telnet."""

    def __init__(self, port, host="127.0.0.1", timeout=30, source=None):
        """source: the local address to connect from, e.g. "127.0.0.2"."""
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.file = self.sock.makefile("rb")
        self.greeted = False

    def reply(self):
        """One reply, all its lines, as text with CR LF removed per line."""
        self.greeted = True
        lines = []
        while True:
            raw = self.file.readline()
            if not raw:
                raise ConnectionError("connection closed; got " + repr(lines))
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def start_data(self, sender="chris@contoso.com", recipient="kate@example.test", helo="contoso.com"):
        """Banner (if not read yet), EHLO, MAIL, RCPT and DATA; asserts each is accepted."""
        if not self.greeted:
            assert self.reply().startswith("220 ")
        assert self.cmd("EHLO " + helo).startswith("250")
        assert self.cmd(f"MAIL FROM:<{sender}>") == "250 2.1.0 Sender OK"
        assert self.cmd(f"RCPT TO:<{recipient}>") == "250 2.1.5 Recipient OK"
        assert self.cmd("DATA").startswith("354 ")

    def closed(self):
        """True when the server has closed the connection (reads EOF)."""
        try:
            return self.file.read(1) == b""
        except (ConnectionResetError, socket.timeout):
            return False

    def close(self):
        """Really closes: the makefile() reader holds the socket open otherwise."""
        try:
            self.file.close()
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def send_until_stopped(port, stop, subject, body_size, acked):
    """Load for kill tests: over one session, sends message after message from
    chris@contoso.com to kate@example.test, the i-th with Subject subject(i) and
    body_size bytes of body, until `stop` is set or the server goes away (a refused
    command or a closed connection ends it quietly). For each 250 calls
    acked(subject(i), InternalId)."""
    try:
        with Client(port, timeout=10) as c:
            c.reply()
            c.cmd("EHLO load.example")
            i = 0
            while not stop.is_set():
                tag = subject(i)
                c.send("MAIL FROM:<chris@contoso.com>\r\nRCPT TO:<kate@example.test>\r\nDATA\r\n")
                if c.reply() != "250 2.1.0 Sender OK" or c.reply() != "250 2.1.5 Recipient OK":
                    return
                if not c.reply().startswith("354"):
                    return
                c.send(f"Subject: {tag}\r\n\r\n" + "x" * body_size + "\r\n.\r\n")
                m = QUEUED.match(c.reply())
                if m:
                    acked(tag, int(m.group(1)))
                i += 1
    except (ConnectionError, OSError, socket.timeout):
        return


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificate(folder, name="mail.example.test"):
    """A self-signed certificate and key for name (openssl), as PEM files."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "30", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    if os.geteuid() == 0 and tern_user_missing() is None:
        # As an administrator would: tern serve, once it runs as its user,
        # reads a renewed certificate on SIGHUP itself.
        pw = pwd.getpwnam(TERN_USER)
        for p in (cert, key):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    return cert, key


def password_hash(password):
    """The hash `tern passwd` prints for password (read from a pipe)."""
    out = subprocess.run([TERN, "passwd"], input=password + "\n", capture_output=True, text=True, check=True)
    return out.stdout.strip()
