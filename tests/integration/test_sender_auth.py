"""Sender authentication end to end through `tern serve` (issue 11, SPEC §2
[sender_auth], §3): a private dnsmasq on 127.0.0.1 publishes SPF, DKIM key
and DMARC records of test domains; mail comes with smtplib from 127.0.0.1
(not a relay network, not authenticated), DKIM-signed by dkimpy where a case
needs it, and is delivered to a Maildir. Asserted on the stored message: one
Authentication-Results field, at the top of what tern stored, authserv-id
tern's hostname; SPF and DKIM alignment; DMARC p=none, quarantine
(X-Tern-Dmarc), reject (the exact 550 5.7.509 reply, nothing stored) and sp=
for a subdomain; a forged Authentication-Results of tern's hostname removed;
a DNS server that never answers (temperror, accepted); 50 signatures.
"""
import email
import email.policy
import re
import smtplib
import subprocess
import time

import dkim
import pytest

from delivery_env import maildir_files, wait_for_maildir
from ternlib import HOSTNAME, TERN, TernServer, base_config
from dns_server import TxtDnsServer, blackhole

CLIENT = "127.0.0.1"
NOT_CLIENT = "192.0.2.1"

# (domain, SPF, DMARC) published; None: no record.
DOMAINS = [
    ("spfpass.test", f"v=spf1 ip4:{CLIENT} -all", "v=DMARC1; p=reject"),
    ("dkimpass.test", f"v=spf1 ip4:{NOT_CLIENT} -all", "v=DMARC1; p=reject"),
    ("none.test", f"v=spf1 ip4:{NOT_CLIENT} -all", "v=DMARC1; p=none"),
    ("quarantine.test", f"v=spf1 ip4:{NOT_CLIENT} -all", "v=DMARC1; p=quarantine"),
    ("reject.test", f"v=spf1 ip4:{NOT_CLIENT} -all", "v=DMARC1; p=reject"),
    ("parent.test", f"v=spf1 ip4:{NOT_CLIENT} -all", "v=DMARC1; p=none; sp=reject"),
    ("sub.parent.test", f"v=spf1 ip4:{NOT_CLIENT} -all", None),
]
# One Maildir per case, so that a case sees only its own mail.
BOXES = ["spf", "dkim", "none", "quarantine", "reject", "sub", "parent", "forged", "many", "slow",
         "marker"]


def split_txt(text):
    """A record as dnsmasq's comma-separated character-strings of at most 255 octets."""
    return ",".join(text[i:i + 255] for i in range(0, len(text), 255))


def keygen(folder):
    out = subprocess.run([TERN, "dkim", "keygen", "dkimpass.test", "py", "--algorithm", "rsa",
                          "--out", str(folder)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = [l for l in out.stdout.splitlines() if "IN TXT" in l][0]
    record = "".join(re.findall(r'"([^"]*)"', line))
    return (folder / "dkimpass.test.py.pem").read_bytes(), record


class World:
    pass


def tern_config(dns_address):
    boxes = "".join(f'[[mailbox]]\naddress = "{b}@example.test"\nmaildir = "mail/{b}"\n' for b in BOXES)
    extra = (f'[dns]\nservers = ["{dns_address}"]\n'
             '[sender_auth]\nverify = true\ndmarc_reject = true\n' + boxes)
    return base_config([("default", "")], extra=extra, delivery="")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World()
    folder = tmp_path_factory.mktemp("sender-auth")
    keys = folder / "keys"
    keys.mkdir()
    w.key, w.record = keygen(keys)
    txt = [("py._domainkey.dkimpass.test", split_txt(w.record))]
    for domain, spf, dmarc in DOMAINS:
        if spf:
            txt.append((domain, spf))
        if dmarc:
            txt.append(("_dmarc." + domain, dmarc))
    w.dns = TxtDnsServer(txt=txt, ttl=600).start()
    w.tern = TernServer(folder / "tern", tern_config(w.dns.address))
    try:
        w.tern.start()
        yield w
    finally:
        w.tern.stop()
        w.dns.stop()


def message(sender, subject, extra_headers=b""):
    return extra_headers + (
            f"From: Sender <{sender}>\r\nTo: <box@example.test>\r\nSubject: {subject}\r\n"
            f"Date: Thu, 3 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{subject.replace(' ', '.')}@test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
            "Hello,\r\n\r\nthis message checks sender authentication.\r\n").encode()


def send(port, sender, box, data):
    """Sends data over one SMTP session from 127.0.0.1; returns (code, text) of
    the reply to the message."""
    with smtplib.SMTP(CLIENT, port, local_hostname="client.test", timeout=60) as s:
        code, text = s.ehlo("client.test")
        assert code == 250
        s.mail(sender)
        assert s.rcpt(f"{box}@example.test")[0] == 250
        reply = s.data(data)
        return reply[0], reply[1].decode()


def stored(server, box):
    [path] = wait_for_maildir(server, box)
    raw = path.read_bytes().replace(b"\r\n", b"\n")
    return raw, email.message_from_bytes(raw, policy=email.policy.compat32)


def header_block(raw):
    return raw.split(b"\n\n", 1)[0].decode()


def our_results(raw):
    """The stored Authentication-Results fields, unfolded, as (index among
    the fields, value); asserts that exactly one names tern's hostname and
    that it is the first field tern stored (only Return-Path and Delivered-To,
    added at delivery, are above it)."""
    fields = re.split(r"\n(?![ \t])", header_block(raw))
    names = [f.split(":", 1)[0] for f in fields]
    results = [(i, re.sub(r"\s+", " ", f.split(":", 1)[1]).strip())
               for i, f in enumerate(fields) if names[i].lower() == "authentication-results"]
    ours = [(i, v) for i, v in results if v.split(";")[0].strip() == HOSTNAME]
    assert len(ours) == 1, fields
    index, value = ours[0]
    assert names[:index] == ["Return-Path", "Delivered-To"], names
    assert names[index + 1] in ("Received", "X-Tern-Dmarc"), names
    return value


def test_spf_pass_and_dmarc_pass_by_spf_alignment(world):
    code, _ = send(world.tern.port, "u@spfpass.test", "spf", message("u@spfpass.test", "spf pass"))
    assert code == 250
    raw, msg = stored(world.tern, "spf")
    ar = our_results(raw)
    assert ar.startswith(f"{HOSTNAME}; spf=pass")
    assert "smtp.mailfrom=u@spfpass.test" in ar
    assert "dkim=none" in ar
    assert re.search(r"dmarc=pass \(p=reject dis=none\) header.from=spfpass.test$", ar), ar
    assert msg["X-Tern-Dmarc"] is None


def dkimpy_signed(world, data, count=1):
    sig = dkim.sign(data, b"py", b"dkimpass.test", world.key, canonicalize=(b"relaxed", b"relaxed"))
    assert dkim.verify(sig + data, dnsfunc=lambda name, timeout=5: world.record.encode())
    return sig * count + data


def test_dkim_pass_gives_dmarc_pass_by_dkim_alignment_when_spf_fails(world):
    data = dkimpy_signed(world, message("u@dkimpass.test", "dkim pass"))
    code, _ = send(world.tern.port, "u@dkimpass.test", "dkim", data)
    assert code == 250
    raw, _ = stored(world.tern, "dkim")
    ar = our_results(raw)
    assert f"{HOSTNAME}; spf=fail" in ar and "smtp.mailfrom=u@dkimpass.test" in ar
    assert re.search(r"dkim=pass header.d=dkimpass.test header.s=py header.b=\S{8};", ar), ar
    assert re.search(r"dmarc=pass \(p=reject dis=none\) header.from=dkimpass.test$", ar), ar


def test_dmarc_fail_with_p_none_is_accepted(world):
    code, _ = send(world.tern.port, "u@none.test", "none", message("u@none.test", "p none"))
    assert code == 250
    raw, msg = stored(world.tern, "none")
    ar = our_results(raw)
    assert "spf=fail" in ar and "dkim=none" in ar
    assert re.search(r"dmarc=fail \(p=none dis=none\) header.from=none.test$", ar), ar
    assert msg["X-Tern-Dmarc"] is None


def test_dmarc_fail_with_p_quarantine_is_accepted_and_marked(world):
    code, _ = send(world.tern.port, "u@quarantine.test", "quarantine",
                   message("u@quarantine.test", "p quarantine"))
    assert code == 250
    raw, msg = stored(world.tern, "quarantine")
    ar = our_results(raw)
    assert re.search(r"dmarc=fail \(p=quarantine dis=quarantine\) header.from=quarantine.test$", ar), ar
    assert msg.get_all("X-Tern-Dmarc") == ["quarantine"]
    fields = [f.split(":", 1)[0] for f in re.split(r"\n(?![ \t])", header_block(raw))]
    assert fields.index("X-Tern-Dmarc") == fields.index("Authentication-Results") + 1


def reject_reply(domain):
    return (f"5.7.509 Access denied, sending domain {domain} does not pass DMARC verification "
            "and has a DMARC policy of reject.")


def assert_refused_and_nothing_kept(world, sender, box, subject):
    reply = send(world.tern.port, sender, box, message(sender, subject))
    assert reply == (550, reject_reply(sender.split("@")[1]))
    # A message sent after it, to the same mailbox, is delivered alone: the
    # refused one was never queued.
    code, _ = send(world.tern.port, "u@spfpass.test", box, message("u@spfpass.test", "after " + subject))
    assert code == 250
    [path] = wait_for_maildir(world.tern, box)
    assert b"Subject: after " + subject.encode() in path.read_bytes()
    refused_id = "<" + subject.replace(" ", ".") + "@test>"
    assert all(q["message_id"] != refused_id for q in world.tern.queue_json())
    assert len(maildir_files(world.tern, box)) == 1


def test_dmarc_fail_with_p_reject_gets_550_5_7_509_and_nothing_is_stored(world):
    assert_refused_and_nothing_kept(world, "u@reject.test", "reject", "p reject")


def test_subdomain_gets_the_parents_sp_policy(world):
    assert_refused_and_nothing_kept(world, "u@sub.parent.test", "sub", "sp reject")
    # The parent domain itself has p=none: accepted, dmarc=fail.
    code, _ = send(world.tern.port, "u@parent.test", "parent", message("u@parent.test", "parent p none"))
    assert code == 250
    raw, _ = stored(world.tern, "parent")
    assert re.search(r"dmarc=fail \(p=none dis=none\) header.from=parent.test$", our_results(raw))


def test_incoming_results_claiming_our_hostname_are_removed(world):
    forged = (f"Authentication-Results: {HOSTNAME}; spf=pass smtp.mailfrom=u@reject.test;\r\n"
              " dkim=pass header.d=reject.test; dmarc=pass header.from=reject.test\r\n"
              f"Authentication-Results: {HOSTNAME.upper()} (forged); dmarc=pass\r\n"
              "Authentication-Results: mx.other.example; spf=pass smtp.mailfrom=u@spfpass.test\r\n"
              "X-Tern-Dmarc: none\r\n").encode()
    code, _ = send(world.tern.port, "u@spfpass.test", "forged",
                   message("u@spfpass.test", "forged results", forged))
    assert code == 250
    raw, msg = stored(world.tern, "forged")
    ar = our_results(raw)  # exactly one of ours: tern's own
    assert ar.startswith(f"{HOSTNAME}; spf=pass") and "reject.test" not in ar
    values = [re.sub(r"\s+", " ", v).strip() for v in msg.get_all("Authentication-Results")]
    assert values == [ar, "mx.other.example; spf=pass smtp.mailfrom=u@spfpass.test"]
    assert msg["X-Tern-Dmarc"] is None  # only tern writes it


def test_fifty_signatures_are_accepted(world):
    data = dkimpy_signed(world, message("u@dkimpass.test", "fifty signatures"), count=50)
    assert data.count(b"DKIM-Signature:") == 50
    started = time.monotonic()
    code, _ = send(world.tern.port, "u@dkimpass.test", "many", data)
    elapsed = time.monotonic() - started
    assert code == 250
    raw, _ = stored(world.tern, "many")
    ar = our_results(raw)
    assert ar.count("dkim=pass header.d=dkimpass.test") == 10, ar
    assert ar.count("dkim=permerror (too many signatures)") == 40, ar
    assert re.search(r"dmarc=pass \(p=reject dis=none\) header.from=dkimpass.test$", ar), ar
    print(f"50 signatures: answered in {elapsed:.2f} s")


def test_dns_that_never_answers_gives_temperror_and_the_message_is_accepted(tmp_path, world):
    with blackhole() as silent:
        tern = TernServer(tmp_path / "tern", tern_config(silent))
        tern.start()
        try:
            data = dkimpy_signed(world, message("u@reject.test", "silent dns"))
            started = time.monotonic()
            code, text = send(tern.port, "u@reject.test", "slow", data)
            elapsed = time.monotonic() - started
            assert code == 250, text
            raw, msg = stored(tern, "slow")
        finally:
            tern.stop()
    ar = our_results(raw)
    assert f"{HOSTNAME}; spf=temperror" in ar
    assert re.search(r"dkim=temperror \([^)]*\) header.d=dkimpass.test header.s=py", ar), ar
    assert re.search(r"dmarc=temperror( \([^)]*\))? header.from=reject.test$", ar), ar
    assert msg["X-Tern-Dmarc"] is None
    print(f"silent DNS: answered in {elapsed:.2f} s")


def test_check_explains_a_dmarc_refusal_with_the_sender_records(world):
    """tern check from 127.0.0.1 as reject.test: the records section shows
    why, the 550 5.7.509 after the message is explained."""
    r = subprocess.run([TERN, "check", "reject@example.test", "--server", f"127.0.0.1:{world.tern.port}",
                        "--from", "u@reject.test", "--helo", "client.test", "--dns-server", world.dns.address],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r.stdout
    lines = r.stdout.splitlines()
    at = lines.index("== Sender records of reject.test (what receiving servers check)")
    assert lines[at + 1] == f'   SPF: found: reject.test IN TXT "v=spf1 ip4:{NOT_CLIENT} -all"'
    assert lines[at + 2] == '   DMARC: found: _dmarc.reject.test IN TXT "v=DMARC1; p=reject"'
    i = lines.index("<- 550 " + reject_reply("reject.test"))
    assert lines[i + 3].startswith("   This means: the server refused the message: it failed the sender "
                                   "domain's SPF, DKIM or DMARC checks"), lines[i:]
    assert "   Try next: look at the sender records tern check printed" in r.stdout
    assert lines[-1] == ("== Verdict: FAIL — 127.0.0.1:%d refused end of message: 550 %s"
                         % (world.tern.port, reject_reply("reject.test")))
