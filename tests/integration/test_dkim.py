"""DKIM against independent implementations (issue 11): keys made by
`tern dkim keygen`, mail from a relay network or an authenticated client
signed by a running tern and delivered to a Maildir, the stored signature
checked by dkimpy (python3-dkim) for rsa-sha256 and ed25519-sha256 and by
Mail::DKIM (libmail-dkim-perl) for rsa-sha256 (Debian 12's Mail::DKIM,
1.20230212, has no ed25519-sha256: the RFC 8463 test vector in
tests/unit/dkim_test.cpp covers that side); and messages signed by dkimpy checked by
`tern dkim verify` (the server's verifier, key records given without DNS):
intact, tampered body, tampered header, expired, unknown key."""
import os
import re
import stat
import subprocess
import time
from unittest import mock

import dkim
import pytest

from delivery_env import wait_for_maildir
from ternlib import TERN, Client, TernServer, base_config, make_certificate, password_hash

PASSWORD = "dkim-test-password"

PERL_VERIFY = r"""
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Net::DNS;
my ($name, $zone) = @ARGV;
{
    no warnings 'redefine';
    # The key record comes from the test, not from DNS.
    *Mail::DKIM::DNS::query = sub {
        my ($domain, $type) = @_;
        return () unless lc($domain) eq lc($name) && $type eq 'TXT';
        return (Net::DNS::RR->new("$name. 60 IN TXT $zone"));
    };
}
my $v = Mail::DKIM::Verifier->new();
binmode STDIN;
while (my $line = <STDIN>) {
    $line =~ s/\r?\n\z/\r\n/;
    $v->PRINT($line);
}
$v->CLOSE;
print STDERR ($v->result_detail // ''), "\n";
print $v->result, "\n";
"""


def keygen(folder, domain, selector, algorithm):
    out = subprocess.run([TERN, "dkim", "keygen", domain, selector, "--algorithm", algorithm,
                          "--out", str(folder)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    path = folder / f"{domain}.{selector}.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    line = [l for l in out.stdout.splitlines() if "IN TXT" in l][0]
    assert line.startswith(f"{selector}._domainkey.{domain}. IN TXT (")
    strings = re.findall(r'"([^"]*)"', line)
    assert all(len(s) <= 255 for s in strings)
    return path, "".join(strings), line[line.index("(") + 1:line.rindex(")")].strip()


def test_keygen_refuses_to_overwrite_and_names_the_algorithm(tmp_path):
    path, record, _ = keygen(tmp_path, "fabrikam.test", "s1", "rsa")
    assert record.startswith("v=DKIM1; k=rsa; p=MIIBIjAN")  # 2048-bit SubjectPublicKeyInfo
    _, record, _ = keygen(tmp_path, "fabrikam.test", "s2", "ed25519")
    assert re.fullmatch(r"v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=", record)
    before = path.read_bytes()
    again = subprocess.run([TERN, "dkim", "keygen", "fabrikam.test", "s1", "--out", str(tmp_path)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "already exists" in again.stderr
    assert path.read_bytes() == before


def test_a_bad_key_file_stops_tern_serve_with_a_clear_message(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n")
    config = base_config([("default", "")],
                         extra=f'[[dkim]]\ndomain = "fabrikam.test"\nselector = "s1"\nprivate_key = "{bad}"\n')
    tern = TernServer(tmp_path / "tern", config)
    with pytest.raises(RuntimeError) as failed:
        tern.start()
    assert f"[[dkim]] domain fabrikam.test: DKIM key {bad}: not a PEM private key" in str(failed.value)
    assert tern.proc.wait(timeout=30) != 0


@pytest.fixture
def signing_tern(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    rsa_key, rsa_record, rsa_zone = keygen(keys, "fabrikam.test", "s1", "rsa")
    ed_key, ed_record, ed_zone = keygen(keys, "northwind.test", "ed1", "ed25519")
    cert, key = make_certificate(tmp_path / "tls")
    # No sender checks here: they would ask DNS about the test domains.
    extra = (f'[relay]\nnetworks = ["127.0.0.2/32"]\n[sender_auth]\nverify = false\n'
             f'[[dkim]]\ndomain = "fabrikam.test"\nselector = "s1"\nprivate_key = "{rsa_key}"\n'
             f'[[dkim]]\ndomain = "northwind.test"\nselector = "ed1"\nprivate_key = "{ed_key}"\n'
             f'[[mailbox]]\naddress = "sender@example.test"\nmaildir = "mail/sender"\n'
             f'password = "{password_hash(PASSWORD)}"\n')
    config = base_config([("default", f'auth = "optional"\ntls = "starttls"\ncertificate = "{cert}"\n'
                                      f'private_key = "{key}"\n')],
                         extra=extra, delivery="")
    tern = TernServer(tmp_path / "tern", config).start()
    tern.records = {"s1._domainkey.fabrikam.test": (rsa_record, rsa_zone),
                    "ed1._domainkey.northwind.test": (ed_record, ed_zone)}
    tern.key_files = {"fabrikam.test": rsa_key, "northwind.test": ed_key}
    yield tern
    tern.stop()


MESSAGE = ("From: Kate <kate@{domain}>\r\nTo: Kate <kate@example.test>\r\n"
           "Subject: signed by tern\r\nDate: Thu, 3 Dec 2026 10:00:00 +0000\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
           "Hello,\r\n\r\n  a line  with   spaces\t\r\n..a dot-stuffed line\r\n\r\n\r\n")


def send_relayed(tern, domain, source="127.0.0.2"):
    with Client(tern.port, source=source) as c:
        c.start_data(sender=f"kate@{domain}", recipient="kate@example.test", helo="client.test")
        c.send(MESSAGE.format(domain=domain) + ".\r\n")
        reply = c.reply()
        assert reply.startswith("250 2.6.0"), reply
        c.cmd("QUIT")


def stored_crlf(path):
    """The delivered message with CR LF line ends (the Maildir file has LF)."""
    return path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def dkimpy_verify(message, records):
    def dnsfunc(name, timeout=5):
        key = name.decode().rstrip(".")
        return records[key][0].encode() if key in records else None
    return dkim.verify(message, dnsfunc=dnsfunc)


def perl_checks(name):
    """Mail::DKIM checks the RSA keys only (see the module comment)."""
    return name.endswith("fabrikam.test")


def perl_verify(message, name, zone):
    out = subprocess.run(["perl", "-e", PERL_VERIFY, name, zone], input=message,
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode().strip()


@pytest.mark.parametrize("domain,selector", [("fabrikam.test", "s1"), ("northwind.test", "ed1")])
def test_relayed_mail_is_signed_and_independent_verifiers_agree(signing_tern, domain, selector):
    send_relayed(signing_tern, domain)
    [path] = wait_for_maildir(signing_tern, "kate")
    stored = stored_crlf(path)
    # Local delivery puts Return-Path and Delivered-To above what was stored:
    # the signature first, then tern's Received, which it does not sign.
    top = stored.index(b"\r\nDKIM-Signature: v=1; a=" +
                       (b"rsa-sha256" if domain == "fabrikam.test" else b"ed25519-sha256"))
    assert stored[:top].count(b"\r\n") == 1 and stored.startswith(b"Return-Path: ")
    received = stored.index(b"\r\nReceived: ")
    assert top < received
    sig = stored[top:received]
    assert b"received" not in sig.lower().split(b" h=")[1].split(b";")[0]
    assert dkimpy_verify(stored, signing_tern.records), stored[:600]
    name = f"{selector}._domainkey.{domain}"
    # A changed body fails.
    tampered = stored.replace(b"a dot-stuffed line", b"a changed line")
    assert not dkimpy_verify(tampered, signing_tern.records)
    if perl_checks(name):
        assert perl_verify(stored, name, signing_tern.records[name][1]) == "pass"
        assert perl_verify(tampered, name, signing_tern.records[name][1]) == "fail"


def test_submitted_mail_is_signed(signing_tern):
    import smtplib
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", signing_tern.port, timeout=30) as s:
        s.starttls(context=ctx)
        s.login("sender@example.test", PASSWORD)
        s.sendmail("sender@example.test", ["kate@example.test"],
                   MESSAGE.format(domain="northwind.test").encode())
    [path] = wait_for_maildir(signing_tern, "kate")
    stored = stored_crlf(path)
    assert b"\r\nDKIM-Signature: v=1; a=ed25519-sha256;" in stored
    assert dkimpy_verify(stored, signing_tern.records)
    assert b"kate@northwind.test" in stored


def test_mail_from_other_clients_and_domains_is_not_signed(signing_tern):
    send_relayed(signing_tern, "contoso.test")  # a relay network, no [[dkim]] key
    with Client(signing_tern.port, source="127.0.0.3") as c:  # neither relay nor authenticated
        c.start_data(sender="kate@fabrikam.test", recipient="kate@example.test", helo="client.test")
        c.send(MESSAGE.format(domain="fabrikam.test") + ".\r\n")
        assert c.reply().startswith("250 2.6.0")
    files = wait_for_maildir(signing_tern, "kate", 2)
    for path in files:
        assert b"DKIM-Signature" not in path.read_bytes()


@pytest.mark.parametrize("domain,selector", [("fabrikam.test", "s1"), ("northwind.test", "ed1")])
def test_check_signs_its_test_message(signing_tern, domain, selector):
    # From 127.0.0.1 (not a relay network): tern serve does not sign; tern check did.
    out = subprocess.run([TERN, "check", "kate@example.test", "--server", f"127.0.0.1:{signing_tern.port}",
                          "--from", f"kate@{domain}", "--dkim", str(signing_tern.key_files[domain]),
                          "--dkim-selector", selector, "--no-sender-records"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    [path] = wait_for_maildir(signing_tern, "kate")
    stored = stored_crlf(path)
    assert stored.index(b"\r\nReceived: ") < stored.index(b"\r\nDKIM-Signature: v=1;")
    assert dkimpy_verify(stored, signing_tern.records)
    name = f"{selector}._domainkey.{domain}"
    if perl_checks(name):
        assert perl_verify(stored, name, signing_tern.records[name][1]) == "pass"


def test_check_refuses_a_bad_dkim_key(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key\n")
    out = subprocess.run([TERN, "check", "kate@example.test", "--server", "127.0.0.1:9",
                          "--from", "kate@fabrikam.test", "--dkim", str(bad), "--dkim-selector", "s1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "not a PEM private key" in out.stderr, out.stderr


# --- messages signed by dkimpy, verified by tern -------------------------------------------

DKIMPY_MESSAGE = (b"From: Chris <chris@contoso.test>\r\nTo: kate@example.test\r\n"
                  b"Subject: from dkimpy\r\nDate: Thu, 3 Dec 2026 10:00:00 +0000\r\n"
                  b"Message-ID: <dkimpy@contoso.test>\r\n\r\nSigned by dkimpy.\r\n\r\nBye.\r\n")


def make_dkimpy_key(tmp_path, algorithm):
    """A key made with tern dkim keygen (PEM) for RSA; a raw seed for Ed25519 (dkimpy's format)."""
    if algorithm == "rsa":
        path, record, _ = keygen(tmp_path, "contoso.test", "py", "rsa")
        return path.read_bytes(), record
    import nacl.signing
    import base64
    seed = os.urandom(32)
    pub = nacl.signing.SigningKey(seed).verify_key.encode()
    return base64.b64encode(seed), "v=DKIM1; k=ed25519; p=" + base64.b64encode(pub).decode()


def tern_verify(tmp_path, message, records, now=None):
    f = tmp_path / "message.eml"
    f.write_bytes(message)
    args = [TERN, "dkim", "verify", str(f), "--no-dns"]
    for name, record in records.items():
        args += ["--key", f"{name}={record}"]
    if now:
        args += ["--now", str(now)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout.strip()


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
@pytest.mark.parametrize("canon", [(b"relaxed", b"relaxed"), (b"simple", b"simple"), (b"relaxed", b"simple")])
def test_dkimpy_signatures_verified_by_tern(tmp_path, algorithm, canon):
    key, record = make_dkimpy_key(tmp_path, algorithm)
    records = {"py._domainkey.contoso.test": record}
    sig = dkim.sign(DKIMPY_MESSAGE, b"py", b"contoso.test", key, canonicalize=canon,
                    signature_algorithm=b"rsa-sha256" if algorithm == "rsa" else b"ed25519-sha256")
    signed = sig + DKIMPY_MESSAGE
    assert dkimpy_verify(signed, {k: (v, None) for k, v in records.items()})
    rc, out = tern_verify(tmp_path, signed, records)
    assert rc == 0 and out.startswith("dkim=pass header.d=contoso.test header.s=py"), out

    rc, out = tern_verify(tmp_path, signed.replace(b"Signed by dkimpy.", b"Signed by someone."), records)
    assert rc == 1 and out.startswith("dkim=fail") and "body hash did not verify" in out, out

    rc, out = tern_verify(tmp_path, signed.replace(b"Subject: from dkimpy", b"Subject: from DKIMPY"), records)
    assert rc == 1 and out.startswith("dkim=fail") and "signature did not verify" in out, out

    rc, out = tern_verify(tmp_path, signed, {})  # no such key
    assert rc == 1 and out.startswith("dkim=permerror") and "no key" in out, out


def test_expired_dkimpy_signature_fails_in_tern(tmp_path):
    key, record = make_dkimpy_key(tmp_path, "ed25519")
    records = {"py._domainkey.contoso.test": record}
    now = int(time.time())
    # dkimpy's sign() has no x= argument: the tag rides in on the selector
    # (its tag list is written as given), and t= comes from a clock an hour
    # back, so dkimpy signs a field with t= an hour ago and x= fifty minutes ago.
    with mock.patch("time.time", return_value=now - 3600):
        sig = dkim.sign(DKIMPY_MESSAGE, f"py; x={now - 3000}".encode(), b"contoso.test", key,
                        signature_algorithm=b"ed25519-sha256")
    assert f"x={now - 3000};".encode() in sig and f"t={now - 3600};".encode() in sig
    rc, out = tern_verify(tmp_path, sig + DKIMPY_MESSAGE, records)
    assert rc == 1 and out == f"dkim=fail header.d=contoso.test header.s=py header.b={_b8(sig)} (signature expired)", out
    # The same signature checked at a time before its expiry passes.
    rc, out = tern_verify(tmp_path, sig + DKIMPY_MESSAGE, records, now=now - 3300)
    assert rc == 0 and out.startswith("dkim=pass"), out


def _b8(sig):
    value = re.search(rb"\bb=([^;]*)", sig.replace(b"\r\n", b"").replace(b" ", b"").replace(b"\t", b""))
    return value.group(1)[:8].decode()
