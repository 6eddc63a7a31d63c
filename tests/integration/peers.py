"""Scripted SMTP and LMTP peers for tern's integration tests.

ScriptedPeer is a raw-socket server (one thread per connection, blocking
sockets) that plays the other side of tern's outbound delivery: an MX host on
127.0.0.X:25, or an LMTP server on 127.0.0.X:24. It records every session
(command lines in order, grouped by the read that delivered them; replies;
each transaction with its envelope and message content, dot-unstuffed) and
lets a test wait for events with a timeout (a threading.Condition, no
sleep-polling):

    with ScriptedPeer("127.0.0.2", reject={"nobody@example.net": "550 5.1.1 User unknown"},
                      defer={"RCPT": 1}) as peer:
        ...                                   # make tern deliver to 127.0.0.2:25
        [msg] = peer.wait_for_messages(1, timeout=30)
        assert msg.mail_from == "chris@example.test"
        assert msg.message["Subject"] == "hi"
        assert peer.sessions[0].rcpt_replies()[0].startswith("451")

What the peer does is a list of Rules, checked in the order added; the first
that applies to a stage decides the reply there, otherwise the default reply
is sent. A rule's action is a reply ("451 4.3.0 Later", multi-line with "\\n"),
raw bytes written as they are, HANG (say nothing more, keep reading), DROP
(close: FIN) or RESET (abort: RST), or a callable (session, argument) that
returns one of those or None (no opinion). Stages:

    CONNECT   the greeting                      argument None
    HELO      EHLO / HELO / LHLO reply           the client's name
    STARTTLS  reply to STARTTLS                  None
    MAIL      reply to MAIL FROM                 the sender address
    RCPT      reply to RCPT TO                   the recipient address
    DATA      reply to DATA (354 by default)     None
    BODY      once message bytes arrive after 354: HANG / DROP / RESET only
    DOT       final reply after the data (DATA or BDAT LAST); in LMTP once
              per accepted recipient             the recipient (LMTP) or None
    BDAT      reply to a non-final BDAT chunk    chunk size
    RSET, NOOP, QUIT                             None

Rule(stage, action, address=..., first=N): `address` limits it to one
address (case-insensitive); `first=N` limits it to the first N sessions in
which it fired (so "451 on RCPT in the first 2 sessions, then accept" is
Rule("RCPT", "451 4.3.0 Try later", first=2)). A reply starting with 421
closes the connection after it is sent, as RFC 5321 says.

Constructor shortcuts: reject={address: reply} (RCPT), defer={stage: N or
(N, reply)} (first N sessions get a 4xx at that stage), hang="STAGE",
drop="STAGE" (e.g. drop="BODY": close mid-DATA), greeting=str or bytes
(GARBAGE: not SMTP at all), ehlo_lines=600 (an EHLO reply that long).
Extensions: size, pipelining, dsn, eightbitmime, smtputf8, enhancedstatuscodes,
chunking, binarymime (off by default), starttls=(cert, key), esmtp=False (EHLO
is refused: HELO only), extra_extensions. With strict=True (default) MAIL/RCPT
parameters of extensions that were not advertised get 555, a non-ASCII address
without SMTPUTF8 gets 553, and commands out of order get 503, so a client that
ignores the EHLO reply is caught.

A refused connection needs no helper: an address with no peer refuses.
Only loopback addresses (127.0.0.0/8, ::1) may be bound; anything else raises.
"""

import email
import email.policy
import ipaddress
import socket
import ssl
import struct
import threading
import time
import traceback

try:  # the fixtures are optional: the classes work without pytest
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

__all__ = ["LoopbackService", "ScriptedPeer", "Rule", "Session", "Message", "HANG", "DROP", "RESET", "GARBAGE",
           "STAGES", "check_loopback", "free_address", "make_peer"]


class _Action:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


HANG = _Action("HANG")    # send nothing more; read (and record) until the client leaves
DROP = _Action("DROP")    # close the connection without a reply (FIN)
RESET = _Action("RESET")  # abort the connection without a reply (RST)

GARBAGE = b"\x16\x03\x01\x00\xa5\x01\x00\xff\xfeGARBAGE this is not SMTP \x00\x7f\r\n"

STAGES = ("CONNECT", "HELO", "STARTTLS", "MAIL", "RCPT", "DATA", "BODY", "DOT", "BDAT",
          "RSET", "NOOP", "QUIT")

DEFAULT_DEFER = {
    "CONNECT": "421 4.3.2 Service not available, try again later",
    "HELO": "421 4.3.2 Service not available, try again later",
    "STARTTLS": "454 4.7.0 TLS not available due to local problem",
    "MAIL": "451 4.3.0 Temporary failure, try again later",
    "RCPT": "451 4.3.0 Temporary failure, try again later",
    "DATA": "451 4.3.0 Temporary failure, try again later",
    "DOT": "451 4.3.0 Temporary failure, try again later",
    "BDAT": "451 4.3.0 Temporary failure, try again later",
}

MAX_LINE = 65536


def check_loopback(host):
    """Raises ValueError unless host is a loopback address (127.0.0.0/8 or ::1)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"not an IP address: {host!r} (peers bind loopback addresses only)") from None
    if not ip.is_loopback:
        raise ValueError(f"{host} is not a loopback address: peers bind 127.0.0.0/8 or ::1 only")
    return str(ip)


def free_address(port=25, first=2, last=254, avoid=()):
    """The first 127.0.0.N (N from first to last, not in avoid) whose port is
    free now, for a test that must not collide with a peer another test
    process holds."""
    for n in range(first, last + 1):
        host = f"127.0.0.{n}"
        if host in avoid:
            continue
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                continue
            return host
    raise RuntimeError(f"no 127.0.0.N with port {port} free")


class Rule:
    """One scripted behaviour: at `stage`, do `action` (see the module doc),
    optionally only for `address` and only in the first `first` sessions."""

    def __init__(self, stage, action, address=None, first=None):
        stage = stage.upper()
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; one of {STAGES}")
        self.stage, self.action, self.address, self.first = stage, action, address, first
        self.sessions = set()  # ids of the sessions where it fired

    def decide(self, session, argument):
        """The action for this session and argument, or None if the rule does not apply."""
        if self.address is not None and (argument or "").lower() != self.address.lower():
            return None
        if self.first is not None and session.id not in self.sessions and len(self.sessions) >= self.first:
            return None
        action = self.action(session, argument) if callable(self.action) and not isinstance(
            self.action, _Action) else self.action
        if action is not None:
            self.sessions.add(session.id)
        return action

    def __repr__(self):
        return f"Rule({self.stage}, {self.action!r}, address={self.address!r}, first={self.first})"


class Message:
    """One mail transaction that reached DATA or BDAT: envelope, content,
    outcome. `data` is the content as delivered (dot-unstuffed, CRLF line
    ends); `raw` is what came on the wire (DATA: still dot-stuffed, without
    the final ".\\r\\n"; BDAT: the chunks joined)."""

    def __init__(self, session, index, mail_from, mail_params):
        self.session_id = session.id
        self.index = index                   # 0-based within the session
        self.helo = session.helo
        self.tls = session.tls
        self.mail_from = mail_from           # without angle brackets; "" for <>
        self.mail_params = mail_params       # {"SIZE": "123", "BODY": "8BITMIME", "RET": "HDRS", ...}
        self.recipients = []                 # accepted at RCPT, in order
        self.rcpt_params = {}                # {address: {"NOTIFY": "SUCCESS,FAILURE", "ORCPT": ...}}
        self.via = None                      # "DATA" or "BDAT"
        self.raw = b""
        self.data = b""
        self.complete = False                # the end of data was received
        self.reply = None                    # final reply (SMTP), or the LMTP replies joined by "\n"
        self.rcpt_replies = {}               # LMTP: {address: reply after data}
        self.delivered = []                  # recipients for which the final reply was 2xx
        self.queue_id = None
        self.chunks = []                     # BDAT chunk sizes

    @property
    def accepted(self):
        """True when the peer took responsibility for at least one recipient."""
        return bool(self.delivered)

    @property
    def message(self):
        """The content parsed as an email.message.EmailMessage."""
        return email.message_from_bytes(self.data, policy=email.policy.default)

    @property
    def text(self):
        """The content decoded as UTF-8 (invalid bytes replaced)."""
        return self.data.decode("utf-8", "replace")

    @property
    def headers(self):
        """The header block as bytes (up to the first empty line)."""
        return self.data.split(b"\r\n\r\n", 1)[0]

    @property
    def body(self):
        """The body as bytes (after the first empty line)."""
        parts = self.data.split(b"\r\n\r\n", 1)
        return parts[1] if len(parts) == 2 else b""

    @property
    def eight_bit(self):
        """True when the content has a byte over 127."""
        return any(b > 127 for b in self.data)

    def __repr__(self):
        return (f"<Message s{self.session_id}.{self.index} from={self.mail_from!r} "
                f"to={self.recipients!r} {len(self.data)} bytes reply={self.reply!r}>")


class Session:
    """One connection: what the client sent and what the peer answered."""

    def __init__(self, sid, client, local):
        self.id = sid
        self.client = client                 # (address, port) of the client
        self.local = local                   # (address, port) the client connected to
        self.commands = []                   # command lines, decoded, in order (no message content)
        self.batches = []                    # the same lines grouped by the read that delivered them
        self.replies = []                    # every reply sent, as text ("\n" between lines)
        self.log = []                        # ("C" | "S" | "*", text) in order: a transcript
        self.helo = None                     # the name given in EHLO/HELO/LHLO
        self.helo_verb = None                # "EHLO", "HELO" or "LHLO"
        self.tls = False
        self.tls_version = None
        self.tls_cipher = None
        self.sni = None                      # server name the client asked for in TLS
        self.discarded_after_starttls = b""  # bytes pipelined after STARTTLS (thrown away)
        self.transactions = []               # Message objects, in order
        self.unanswered = b""                # bytes received while hanging
        self.ended = False
        self.end_reason = None               # "quit", "client closed", "dropped", "reset", "hang", "421", ...

    @property
    def verbs(self):
        """The command verbs in order, upper case: ["EHLO", "MAIL", "RCPT", ...]."""
        return [c.split(" ", 1)[0].upper() for c in self.commands]

    def replies_to(self, verb):
        """Replies sent to commands with this verb, in order."""
        verb = verb.upper()
        out, current = [], None
        for kind, text in self.log:
            if kind == "C":
                current = text.split(" ", 1)[0].upper()
            elif kind == "S" and current == verb:
                out.append(text)
        return out

    def rcpt_replies(self):
        """Replies sent to RCPT commands, in order."""
        return self.replies_to("RCPT")

    def transcript(self):
        """The session as text: "C: ..." / "S: ..." / "*: ..." lines."""
        return "\n".join(f"{k}: {line}" for k, text in self.log for line in text.split("\n"))

    def __repr__(self):
        return f"<Session {self.id} from {self.client} commands={self.commands!r} ended={self.end_reason}>"


class _End(Exception):
    """Ends a session's thread with a reason."""


class LoopbackService:
    """What every test peer shares: host and port on a loopback address,
    "host:port" (brackets for IPv6), and use as a context manager
    (start() on entry, stop() on exit)."""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def address(self):
        """"host:port" (with brackets for IPv6), the form tern.toml and tools take."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class ScriptedPeer(LoopbackService):
    """A scripted SMTP (or LMTP, lmtp=True) server on a loopback address; see
    the module docstring. start() binds and returns self; stop() closes every
    socket and joins every thread. Usable as a context manager."""

    def __init__(self, host="127.0.0.2", port=None, lmtp=False, *, hostname=None,
                 size=52428800, pipelining=True, dsn=True, eightbitmime=True, smtputf8=True,
                 enhancedstatuscodes=True, chunking=False, binarymime=False, starttls=None,
                 esmtp=True, extra_extensions=(), ehlo_lines=None, greeting=None,
                 reject=None, defer=None, hang=None, drop=None, rules=(), strict=True,
                 idle_timeout=120):
        self.host = check_loopback(host)
        self.port = (24 if lmtp else 25) if port is None else port
        self.lmtp = lmtp
        self.hostname = hostname or ("lmtp.peer.test" if lmtp else "mx.peer.test")
        self.size, self.pipelining, self.dsn = size, pipelining, dsn
        self.eightbitmime, self.smtputf8, self.enhancedstatuscodes = eightbitmime, smtputf8, enhancedstatuscodes
        self.chunking, self.binarymime, self.esmtp = chunking, binarymime, esmtp
        self.extra_extensions = list(extra_extensions)
        self.ehlo_lines = ehlo_lines
        self.strict = strict
        self.idle_timeout = idle_timeout
        self.greeting = greeting if greeting is not None else \
            f"220 {self.hostname} {'LMTP' if lmtp else 'ESMTP'} scripted peer ready"
        self.tls_context = None
        if starttls:
            cert, key = starttls
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.load_cert_chain(str(cert), str(key))
            self.tls_context.sni_callback = self._sni
        self.rules = []
        for address, reply in (reject or {}).items():
            self.rules.append(Rule("RCPT", reply, address=address))
        for stage, spec in (defer or {}).items():
            n, reply = spec if isinstance(spec, tuple) else (spec, DEFAULT_DEFER[stage.upper()])
            self.rules.append(Rule(stage, reply, first=n))
        if hang:
            self.rules.append(Rule(hang, HANG))
        if drop:
            self.rules.append(Rule(drop, DROP))
        self.rules.extend(rules)

        self._cond = threading.Condition()
        self._sessions = []
        self._messages = []
        self._listener = None
        self._accept_thread = None
        self._threads = []
        self._kill_socks = {}   # session id -> dup of the connection, to shut it down from stop()
        self._stopping = False
        self._next_id = 0
        self.errors = []        # tracebacks of bugs in the peer itself; stop() raises if any

    # ----- set-up -----------------------------------------------------

    def on(self, stage, action, address=None, first=None):
        """Adds a Rule (after the existing ones); returns self."""
        with self._cond:
            self.rules.append(Rule(stage, action, address=address, first=first))
        return self

    def start(self):
        """Binds host:port (SO_REUSEADDR), starts accepting; returns self."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as e:
            sock.close()
            raise OSError(e.errno, f"ScriptedPeer cannot bind {self.host}:{self.port}: {e.strerror}") from None
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self._listener = sock
        self._stopping = False
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"peer-{self.address}",
                                               daemon=True)
        self._accept_thread.start()
        return self

    def stop(self, timeout=10):
        """Closes the listener and every connection, joins every thread. Idempotent.
        Raises RuntimeError if a thread did not stop or the peer itself failed."""
        with self._cond:
            self._stopping = True
            kill = list(self._kill_socks.values())
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
            except OSError:
                pass
        for s in kill:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        stuck = []
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
            if self._accept_thread.is_alive():
                stuck.append(self._accept_thread.name)
        for t in list(self._threads):
            t.join(timeout)
            if t.is_alive():
                stuck.append(t.name)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._cond:
            for s in self._kill_socks.values():
                s.close()
            self._kill_socks.clear()
            self._cond.notify_all()
        self._accept_thread = None
        self._threads = []
        if stuck:
            raise RuntimeError(f"ScriptedPeer {self.address}: threads did not stop: {stuck}")
        if self.errors:
            raise RuntimeError(f"ScriptedPeer {self.address} failed in a session:\n" + "\n".join(self.errors))

    # ----- what was recorded -------------------------------------------

    @property
    def sessions(self):
        """Every session so far (a copy of the list), oldest first."""
        with self._cond:
            return list(self._sessions)

    @property
    def messages(self):
        """Every accepted message (final reply 2xx for at least one recipient), in order."""
        with self._cond:
            return list(self._messages)

    @property
    def transactions(self):
        """Every transaction that reached DATA/BDAT, accepted or not, complete or not."""
        with self._cond:
            return [m for s in self._sessions for m in s.transactions]

    def clear(self):
        """Forgets recorded sessions and messages and the rules' session counts."""
        with self._cond:
            self._sessions = [s for s in self._sessions if not s.ended]
            self._messages = []
            for r in self.rules:
                r.sessions.clear()

    def transcripts(self):
        """Every session's transcript, for assertion messages."""
        with self._cond:
            return "\n\n".join(f"session {s.id} ({s.end_reason or 'open'}):\n{s.transcript()}"
                               for s in self._sessions) or "(no session)"

    # ----- waiting -------------------------------------------------------

    def wait_for(self, predicate, timeout=30, what="condition"):
        """Waits until predicate(peer) is true (checked at every event, under the
        peer's lock); returns its value. Raises TimeoutError with the transcripts."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"ScriptedPeer {self.address}: no {what} within {timeout}s\n"
                                       + self._transcripts_locked())
                self._cond.wait(left)

    def wait_for_messages(self, n=1, timeout=30):
        """Waits until n messages were accepted; returns the list of all so far."""
        return self.wait_for(lambda p: len(p._messages) >= n and list(p._messages),
                             timeout, f"{n} accepted message(s)")

    def wait_for_sessions(self, n=1, timeout=30, ended=True):
        """Waits until n sessions have ended (ended=False: have started); returns them."""
        def ok(p):
            done = [s for s in p._sessions if s.ended or not ended]
            return len(done) >= n and list(p._sessions)
        return self.wait_for(ok, timeout, f"{n} {'ended' if ended else 'started'} session(s)")

    def wait_for_command(self, verb, n=1, timeout=30):
        """Waits until commands with this verb were received n times in all."""
        verb = verb.upper()
        return self.wait_for(lambda p: sum(s.verbs.count(verb) for s in p._sessions) >= n,
                             timeout, f"{n} {verb} command(s)")

    def _transcripts_locked(self):
        return "\n\n".join(f"session {s.id} ({s.end_reason or 'open'}):\n{s.transcript()}"
                           for s in self._sessions) or "(no session)"

    # ----- internals -------------------------------------------------------

    def _sni(self, sslobj, name, ctx):
        session = getattr(sslobj, "_tern_session", None)
        if session is not None:
            session.sni = name

    def _decide(self, stage, session, argument):
        with self._cond:
            for rule in self.rules:
                if rule.stage == stage:
                    action = rule.decide(session, argument)
                    if action is not None:
                        return action
        return None

    def _record(self, fn):
        with self._cond:
            fn()
            self._cond.notify_all()

    def _accept_loop(self):
        while True:
            try:
                conn, client = self._listener.accept()
            except OSError:
                return
            with self._cond:
                if self._stopping:
                    conn.close()
                    return
                sid = self._next_id
                self._next_id += 1
                session = Session(sid, client[:2], conn.getsockname()[:2])
                self._sessions.append(session)
                self._kill_socks[sid] = conn.dup()
                t = threading.Thread(target=_Connection(self, conn, session).run,
                                     name=f"peer-{self.address}-s{sid}", daemon=True)
                self._threads.append(t)
                self._cond.notify_all()
            t.start()

    def extensions(self, tls_active=False):
        """The EHLO keywords advertised (after the first line)."""
        ext = []
        if self.size is not None:
            ext.append(f"SIZE {self.size}")
        if self.pipelining:
            ext.append("PIPELINING")
        if self.tls_context is not None and not tls_active:
            ext.append("STARTTLS")
        if self.enhancedstatuscodes:
            ext.append("ENHANCEDSTATUSCODES")
        if self.dsn:
            ext.append("DSN")
        if self.eightbitmime:
            ext.append("8BITMIME")
        if self.binarymime:
            ext.append("BINARYMIME")
        if self.chunking:
            ext.append("CHUNKING")
        if self.smtputf8:
            ext.append("SMTPUTF8")
        return ext + self.extra_extensions


def _parse_path(rest):
    """"<a@b> K=V K2" -> ("a@b", {"K": "V", "K2": None}); raises ValueError."""
    rest = rest.lstrip(" ")
    if rest.startswith("<"):
        end = rest.find(">")
        if end < 0:
            raise ValueError("no closing >")
        address, params = rest[1:end], rest[end + 1:]
        if params and not params.startswith(" "):
            raise ValueError("junk after >")
    else:
        address, _, params = rest.partition(" ")
        if not address:
            raise ValueError("no address")
    out = {}
    for token in params.split():
        key, eq, value = token.partition("=")
        out[key.upper()] = value if eq else None
    return address, out


class _Connection:
    """Runs one session on a blocking socket (in its own thread)."""

    def __init__(self, peer, sock, session):
        self.peer, self.sock, self.session = peer, sock, session
        self.buf = b""
        self.txn = None
        self.new_batch = True
        self.queue_seq = 0
        sock.settimeout(peer.idle_timeout)

    # --- I/O ---
    def note(self, kind, text):
        def add():
            self.session.log.append((kind, text))
            if kind == "S":
                self.session.replies.append(text)
        self.peer._record(add)

    def recv(self):
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise _End("idle timeout")
        except (OSError, ssl.SSLError) as e:
            raise _End("stopped" if self.peer._stopping else f"read error: {e}")
        if not data:
            raise _End("stopped" if self.peer._stopping else "client closed")
        self.new_batch = True
        return data

    def read_line(self):
        """One line without its CRLF (bare LF also ends a line), as bytes."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 1:]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self.buf) > MAX_LINE:
                self.buf = b""
                self.send("500 5.5.2 Error: line too long")
                raise _End("line too long")
            self.buf += self.recv()

    def read_exact(self, n):
        while len(self.buf) < n:
            self.buf += self.recv()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send_raw(self, data):
        self.note("S", data.decode("utf-8", "replace").rstrip("\r\n"))
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError) as e:
            raise _End(f"write error: {e}")

    def send(self, reply):
        """Sends a reply (lines joined by "\\n"); a 421 closes the connection."""
        lines = reply.split("\n")
        self.note("S", reply)
        try:
            self.sock.sendall(("\r\n".join(lines) + "\r\n").encode("utf-8"))
        except (OSError, ssl.SSLError) as e:
            raise _End(f"write error: {e}")
        if reply.startswith("421"):
            raise _End("421")

    def respond(self, stage, argument, default):
        """Sends the scripted or default reply for a stage and returns the
        reply text (None if raw bytes were sent). HANG/DROP/RESET end the session."""
        action = self.peer._decide(stage, self.session, argument)
        if action is None:
            action = default
        if action is HANG:
            self.hang()
        if action is DROP or action is RESET:
            self.abort(action)
        if isinstance(action, bytes):
            self.send_raw(action)
            return None
        self.send(action)
        return action

    def hang(self):
        self.note("*", "hanging: no more replies")
        pending, self.buf = self.buf, b""
        self.peer._record(lambda: setattr(self.session, "unanswered", self.session.unanswered + pending))
        while True:
            try:
                data = self.recv()
            except _End as e:
                raise _End(f"hang ({e})")
            self.peer._record(lambda: setattr(self.session, "unanswered", self.session.unanswered + data))

    def abort(self, action):
        if action is RESET:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.note("*", "connection reset" if action is RESET else "connection closed by the peer")
        raise _End("reset" if action is RESET else "dropped")

    # --- the session ---
    def run(self):
        reason = "error"
        try:
            self.respond("CONNECT", None, self.peer.greeting)
            while True:
                line = self.read_line()
                self.command(line)
        except _End as e:
            reason = str(e)
        except Exception as e:  # a bug here must show in the test, not vanish: stop() raises it
            reason = f"peer error: {e!r}"
            detail = traceback.format_exc()
            self.peer._record(lambda: self.peer.errors.append(detail))
        finally:
            with self.peer._cond:  # the dup would keep the connection open
                dup = self.peer._kill_socks.pop(self.session.id, None)
            if dup is not None:
                dup.close()
            try:
                self.sock.close()
            except OSError:
                pass

            def end():
                self.session.ended = True
                self.session.end_reason = reason
            self.peer._record(end)

    def command(self, raw):
        text = raw.decode("utf-8", "replace")
        new = self.new_batch
        self.new_batch = False

        def add():
            self.session.commands.append(text)
            if new or not self.session.batches:
                self.session.batches.append([])
            self.session.batches[-1].append(text)
            self.session.log.append(("C", text))
        self.peer._record(add)

        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        handler = getattr(self, "cmd_" + verb, None)
        if (verb in ("EHLO", "HELO") and self.peer.lmtp) or (verb == "LHLO" and not self.peer.lmtp):
            handler = None
        if handler is None:
            self.send("500 5.5.2 Error: command not recognized")
            return
        handler(arg)

    def reset_txn(self):
        self.txn = None

    def greet_reply(self, verb, name):
        host = self.peer.hostname
        if verb == "HELO":
            return f"250 {host}"
        ext = self.peer.extensions(self.session.tls)
        pad = []
        if self.peer.ehlo_lines:
            pad = [f"X-PADDING-{i:04d} this extension means nothing"
                   for i in range(max(0, self.peer.ehlo_lines - 1 - len(ext)))]
        lines = [f"{host} Hello {name}"] + pad + ext
        return "\n".join(f"250{' ' if i == len(lines) - 1 else '-'}{line}" for i, line in enumerate(lines))

    def greet(self, verb, arg):
        name = arg.strip()
        if not name:
            self.send("501 5.5.4 Syntax: " + verb + " hostname")
            return
        self.reset_txn()
        reply = self.respond("HELO", name, self.greet_reply(verb, name))
        if reply is None or reply.startswith("2"):
            def setname():
                self.session.helo, self.session.helo_verb = name, verb
            self.peer._record(setname)

    def cmd_EHLO(self, arg):
        if not self.peer.esmtp:
            self.send("502 5.5.2 Error: command not recognized")
            return
        self.greet("EHLO", arg)

    def cmd_HELO(self, arg):
        self.greet("HELO", arg)

    def cmd_LHLO(self, arg):
        self.greet("LHLO", arg)

    def cmd_STARTTLS(self, arg):
        if self.peer.tls_context is None or self.session.tls:
            self.send("502 5.5.1 Error: command not implemented")
            return
        if arg.strip():
            self.send("501 5.5.4 Syntax: STARTTLS")
            return
        reply = self.respond("STARTTLS", None, "220 2.0.0 Ready to start TLS")
        if reply is None or not reply.startswith("220"):
            return
        injected, self.buf = self.buf, b""
        if injected:
            self.note("*", f"discarded {len(injected)} bytes pipelined after STARTTLS")
        try:
            tls = self.peer.tls_context.wrap_socket(self.sock, server_side=True, do_handshake_on_connect=False)
            tls._tern_session = self.session  # for the SNI callback
            tls.do_handshake()
        except (OSError, ssl.SSLError, AttributeError) as e:
            self.note("*", f"TLS handshake failed: {e}")
            raise _End(f"tls handshake failed: {e}")
        self.sock = tls

        def done():
            self.session.discarded_after_starttls += injected
            self.session.tls = True
            self.session.tls_version = tls.version()
            self.session.tls_cipher = tls.cipher()[0]
            self.session.helo = None
            self.session.helo_verb = None
            self.session.log.append(("*", f"TLS {tls.version()} {tls.cipher()[0]}"))
        self.peer._record(done)
        self.reset_txn()
        self.new_batch = True

    def check_params(self, params, allowed):
        for key in params:
            if key not in allowed and self.peer.strict:
                self.send(f"555 5.5.4 Unsupported option: {key}")
                return False
        return True

    def cmd_MAIL(self, arg):
        p = self.peer
        if not arg.upper().startswith("FROM:"):
            self.send("501 5.5.4 Syntax: MAIL FROM:<address>")
            return
        if p.strict and self.session.helo is None:
            self.send("503 5.5.1 Error: send HELO/EHLO first")
            return
        if self.txn is not None:
            self.send("503 5.5.1 Error: nested MAIL command")
            return
        try:
            address, params = _parse_path(arg[5:])
        except ValueError:
            self.send("501 5.1.7 Bad sender address syntax")
            return
        allowed = set()
        if p.size is not None:
            allowed.add("SIZE")
        if p.eightbitmime or p.binarymime:
            allowed.add("BODY")
        if p.dsn:
            allowed |= {"RET", "ENVID"}
        if p.smtputf8:
            allowed.add("SMTPUTF8")
        if not self.check_params(params, allowed):
            return
        body = (params.get("BODY") or "").upper()
        if "BODY" in params and p.strict and body not in (
                ["7BIT"] + (["8BITMIME"] if p.eightbitmime else []) + (["BINARYMIME"] if p.binarymime else [])):
            self.send(f"501 5.5.4 Unsupported BODY={params['BODY']}")
            return
        if "SIZE" in params:
            if not (params["SIZE"] or "").isdigit():
                self.send("501 5.5.4 Bad SIZE syntax")
                return
            if p.size and int(params["SIZE"]) > p.size:
                self.send("552 5.3.4 Message size exceeds fixed limit")
                return
        if p.strict and not address.isascii() and "SMTPUTF8" not in params:
            self.send("553 5.6.7 Must declare SMTPUTF8 to send unicode address")
            return
        reply = self.respond("MAIL", address, "250 2.1.0 Ok")
        if reply is None or reply.startswith("2"):
            self.txn = Message(self.session, len(self.session.transactions), address, params)

    def cmd_RCPT(self, arg):
        if not arg.upper().startswith("TO:"):
            self.send("501 5.5.4 Syntax: RCPT TO:<address>")
            return
        if self.txn is None:
            self.send("503 5.5.1 Error: need MAIL command")
            return
        try:
            address, params = _parse_path(arg[3:])
        except ValueError:
            self.send("501 5.1.3 Bad recipient address syntax")
            return
        if not address:
            self.send("501 5.1.3 Bad recipient address syntax")
            return
        if not self.check_params(params, {"NOTIFY", "ORCPT"} if self.peer.dsn else set()):
            return
        if self.peer.strict and not address.isascii() and "SMTPUTF8" not in self.txn.mail_params:
            self.send("553 5.6.7 Must declare SMTPUTF8 to send unicode address")
            return
        reply = self.respond("RCPT", address, "250 2.1.5 Ok")
        if reply is None or reply.startswith("2"):
            self.txn.recipients.append(address)
            self.txn.rcpt_params[address] = params

    def begin_content(self, via):
        txn = self.txn
        txn.via = via
        txn.tls = self.session.tls
        self.peer._record(lambda: self.session.transactions.append(txn))

    def cmd_DATA(self, arg):
        if self.txn is None:
            self.send("503 5.5.1 Error: need MAIL command")
            return
        if not self.txn.recipients:
            self.send("554 5.5.1 Error: no valid recipients")
            return
        if arg.strip():
            self.send("501 5.5.4 Syntax: DATA")
            return
        reply = self.respond("DATA", None, "354 End data with <CR><LF>.<CR><LF>")
        if reply is not None and not reply.startswith("3"):
            return
        txn = self.txn
        self.begin_content("DATA")
        if not self.buf:
            self.buf += self.recv()
        action = self.peer._decide("BODY", self.session, None)
        if action is HANG or action is DROP or action is RESET:
            self.peer._record(lambda: setattr(txn, "raw", bytes(self.buf)))
            if action is HANG:
                self.hang()
            self.abort(action)
        raw, data = bytearray(), bytearray()
        while True:
            i = self.buf.find(b"\r\n")
            while i < 0:
                self.buf += self.recv()
                i = self.buf.find(b"\r\n")
            line, self.buf = self.buf[:i], self.buf[i + 2:]
            if line == b".":
                break
            raw += line + b"\r\n"
            data += (line[1:] if line.startswith(b".") else line) + b"\r\n"

        def got():
            txn.raw, txn.data, txn.complete = bytes(raw), bytes(data), True
        self.peer._record(got)
        self.new_batch = True
        self.finish()

    def cmd_BDAT(self, arg):
        if not self.peer.chunking:
            self.send("500 5.5.2 Error: command not recognized")
            return
        parts = arg.split()
        if not parts or not parts[0].isdigit() or len(parts) > 2 or (
                len(parts) == 2 and parts[1].upper() != "LAST"):
            self.send("501 5.5.4 Syntax: BDAT size [LAST]")
            raise _End("bad BDAT: cannot find the next command")
        size, last = int(parts[0]), len(parts) == 2
        chunk = self.read_exact(size)
        self.new_batch = True
        if self.txn is None or not self.txn.recipients:
            self.send("503 5.5.1 Error: need MAIL and RCPT before BDAT")
            return
        txn = self.txn
        if txn.via is None:
            self.begin_content("BDAT")

        def got():
            txn.raw += chunk
            txn.data += chunk
            txn.chunks.append(size)
            txn.complete = last
        self.peer._record(got)
        if last:
            self.finish()
            return
        reply = self.respond("BDAT", size, f"250 2.0.0 {size} octets received")
        if reply is not None and not reply.startswith("2"):
            self.reset_txn()

    def finish(self):
        """The final reply(ies) after the content; records the outcome."""
        txn = self.txn
        self.reset_txn()
        self.queue_seq += 1
        qid = f"S{self.session.id}Q{self.queue_seq}"
        too_big = self.peer.size and len(txn.data) > self.peer.size
        if not self.peer.lmtp:
            default = ("552 5.3.4 Message size exceeds fixed limit" if too_big
                       else f"250 2.0.0 Ok: queued as {qid}")
            reply = self.respond("DOT", None, default)
            delivered = list(txn.recipients) if reply is None or reply.startswith("2") else []
            self.peer._record(lambda: self.outcome(txn, reply, {}, delivered, qid))
            return
        replies, delivered = {}, []
        for rcpt in txn.recipients:
            default = ("552 5.3.4 Message size exceeds fixed limit" if too_big
                       else f"250 2.0.0 <{rcpt}> {qid} Saved")
            try:
                reply = self.respond("DOT", rcpt, default)
            except _End:
                self.peer._record(lambda: self.outcome(txn, None, replies, delivered, qid))
                raise
            replies[rcpt] = reply
            if reply is None or reply.startswith("2"):
                delivered.append(rcpt)
        self.peer._record(lambda: self.outcome(
            txn, "\n".join(r or "" for r in replies.values()), replies, delivered, qid))

    def outcome(self, txn, reply, replies, delivered, qid):
        txn.reply, txn.rcpt_replies, txn.delivered = reply, dict(replies), list(delivered)
        if delivered:
            txn.queue_id = qid
            self.peer._messages.append(txn)

    def cmd_RSET(self, arg):
        self.reset_txn()
        self.respond("RSET", None, "250 2.0.0 Ok")

    def cmd_NOOP(self, arg):
        self.respond("NOOP", None, "250 2.0.0 Ok")

    def cmd_VRFY(self, arg):
        self.send("252 2.0.0 Send some mail, I'll try my best")

    def cmd_HELP(self, arg):
        self.send("214 2.0.0 Scripted peer for tests")

    def cmd_QUIT(self, arg):
        reply = self.respond("QUIT", None, "221 2.0.0 Bye")
        if reply is None or reply.startswith("221"):
            raise _End("quit")


if pytest is not None:
    @pytest.fixture
    def make_peer():
        """make_peer(**ScriptedPeer kwargs) -> a started ScriptedPeer, stopped at teardown.
        Import it into a test module (or conftest.py) to use it."""
        started = []

        def make(*args, **kwargs):
            peer = ScriptedPeer(*args, **kwargs).start()
            started.append(peer)
            return peer

        yield make
        errors = []
        for peer in reversed(started):
            try:
                peer.stop()
            except Exception as e:  # stop them all, then report
                errors.append(e)
        if errors:
            raise errors[0]
