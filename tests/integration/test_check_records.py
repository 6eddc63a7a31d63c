"""`tern check` reports the sender domain's SPF, DKIM key and DMARC records
(issue 11 point 4) as receiving servers judge them: found, missing, wrong
(two SPF records, +all, a DMARC record without p=, a DKIM key that is not the
--dkim key's public half) or unknown (DNS silent), each problem with what it
means and what to publish; the same in --json under "sender_records". The
records come from a private dnsmasq; the SMTP part of the check goes to a
port where nothing listens (the records section comes before it and does not
change the verdict).
"""
import json
import re
import subprocess

import pytest

from dns_server import TxtDnsServer, blackhole, free_port
from ternlib import TERN


def keygen(folder, selector):
    out = subprocess.run([TERN, "dkim", "keygen", "good.test", selector, "--out", str(folder)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = [l for l in out.stdout.splitlines() if "IN TXT" in l][0]
    return folder / f"good.test.{selector}.pem", "".join(re.findall(r'"([^"]*)"', line))


def split_txt(text):
    return ",".join(text[i:i + 255] for i in range(0, len(text), 255))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("check-records")
    key, record = keygen(folder, "s1")
    other_key, _ = keygen(folder, "s2")
    txt = [
        ("good.test", "v=spf1 ip4:192.0.2.25 -all"),
        ("_dmarc.good.test", "v=DMARC1; p=reject"),
        ("s1._domainkey.good.test", split_txt(record)),
        ("twospf.test", "v=spf1 ip4:192.0.2.25 -all"),
        ("twospf.test", "v=spf1 mx -all"),
        ("_dmarc.twospf.test", "v=DMARC1; p=quarantine"),
        ("plusall.test", "v=spf1 mx +all"),
        ("_dmarc.plusall.test", "v=DMARC1; adkim=s"),  # no p=, no rua
        ("nodmarc.test", "v=spf1 -all"),
        ("revoked.test", "v=spf1 -all"),
        ("s1._domainkey.revoked.test", "v=DMARC1; p=none"),  # not a key record
    ]
    with TxtDnsServer(txt=txt, ttl=600) as dns:
        dns.key, dns.other_key, dns.folder = key, other_key, folder
        yield dns


def check(env, sender, *args, dns=None):
    argv = [TERN, "check", "kate@example.test", "--server", f"127.0.0.1:{free_port()}", "--from", sender,
            "--helo", "client.test", "--dns-server", dns or env.address, "--timeout", "2", *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=env.folder,
                       stdin=subprocess.DEVNULL)
    assert "Traceback" not in r.stderr and "terminate called" not in r.stderr, r.stderr
    assert r.returncode == 1  # nothing listens: the SMTP part fails, whatever the records say
    return r


def section(r, domain):
    lines = r.stdout.splitlines()
    start = lines.index(f"== Sender records of {domain} (what receiving servers check)")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("== "))
    assert lines[end].startswith("== OPEN 127.0.0.1:")
    return lines[start + 1:end]


def test_good_records_are_found_and_the_key_matches(env):
    r = check(env, "kate@good.test", "--dkim", str(env.key), "--dkim-selector", "s1")
    lines = section(r, "good.test")
    assert lines[0] == '   SPF: found: good.test IN TXT "v=spf1 ip4:192.0.2.25 -all"'
    assert lines[1].startswith('   DKIM: found: s1._domainkey.good.test IN TXT "v=DKIM1; k=rsa; p=')
    assert lines[2] == f"      the key matches --dkim {env.key}"
    assert lines[3] == '   DMARC: found: _dmarc.good.test IN TXT "v=DMARC1; p=reject"'
    assert len(lines) == 4
    assert "This means" not in "\n".join(lines) and "Publish" not in "\n".join(lines)


def test_subdomain_finds_the_organisational_domains_dmarc_record(env):
    lines = section(check(env, "kate@sub.good.test"), "sub.good.test")
    assert lines[0] == "   SPF: MISSING: sub.good.test publishes no SPF record (TXT \"v=spf1 …\")"
    assert lines[3] == ('   DMARC: found: _dmarc.good.test IN TXT "v=DMARC1; p=reject" '
                        "(the organisational domain's record, for sub.good.test too)")


def test_missing_records_say_what_to_publish(env):
    lines = section(check(env, "kate@bare.test", "--dkim", str(env.key), "--dkim-selector", "s1"),
                    "bare.test")
    assert lines == [
        '   SPF: MISSING: bare.test publishes no SPF record (TXT "v=spf1 …")',
        "      This means: receiving servers cannot tell which hosts may send mail as bare.test (SPF none); "
        "many treat such mail as suspect, and DMARC can then pass only by DKIM",
        '      Publish: bare.test. IN TXT "v=spf1 mx -all" (add ip4:/ip6: or include: for every other host '
        "or service that sends as bare.test)",
        "   DKIM: MISSING: no key record at s1._domainkey.bare.test",
        "      This means: receiving servers cannot check signatures made with selector s1 (DKIM permerror: "
        "no key), so DMARC can pass only by SPF",
        lines[5],
        "   DMARC: MISSING: no DMARC record at _dmarc.bare.test",
        "      This means: receiving servers have no policy for mail that fails SPF and DKIM alignment: "
        "mail forged in the name of bare.test is not refused, and no reports are sent",
        '      Publish: _dmarc.bare.test. IN TXT "v=DMARC1; p=none; rua=mailto:postmaster@bare.test" '
        "(then p=quarantine or p=reject once reports show only your own mail)",
    ]
    # The key record to publish is the --dkim key's own.
    assert lines[5].startswith('      Publish: s1._domainkey.bare.test. IN TXT ("v=DKIM1; k=rsa; p=MIIB')


def test_wrong_records_are_explained(env):
    lines = section(check(env, "kate@twospf.test"), "twospf.test")
    assert lines[0] == "   SPF: WRONG: twospf.test publishes 2 SPF records"
    assert lines[1].startswith("      This means: more than one SPF record is a permanent error (RFC 7208 §4.5)")
    assert lines[2].startswith("      Publish: one record that merges them")

    lines = section(check(env, "kate@plusall.test"), "plusall.test")
    assert lines[0] == '   SPF: WRONG: plusall.test IN TXT "v=spf1 mx +all"'
    assert lines[1].startswith('      This means: "+all": any host on the Internet passes SPF for plusall.test')
    assert lines[3] == '   DMARC: WRONG: _dmarc.plusall.test IN TXT "v=DMARC1; adkim=s"'
    assert lines[4].startswith("      This means: the record is not usable (no p tag)")

    # A key record that is not the --dkim key's public half; a selector whose record is not a key.
    lines = section(check(env, "kate@good.test", "--dkim", str(env.other_key), "--dkim-selector", "s1"),
                    "good.test")
    assert lines[1].startswith("   DKIM: WRONG: s1._domainkey.good.test IN TXT")
    assert lines[2] == (f"      This means: the key in DNS is not the public half of --dkim {env.other_key}: "
                        "signatures made with that key fail (DKIM fail)")
    lines = section(check(env, "kate@revoked.test", "--dkim", str(env.key), "--dkim-selector", "s1"),
                    "revoked.test")
    assert lines[1] == '   DKIM: WRONG: s1._domainkey.revoked.test IN TXT "v=DMARC1; p=none"'
    assert lines[2].startswith("      This means: the record is not a usable DKIM key (")


def test_json_has_the_sender_records(env):
    r = check(env, "kate@plusall.test", "--json")
    doc = json.loads(r.stdout)
    records = doc["sender_records"]
    assert records["domain"] == "plusall.test"
    assert records["spf"]["status"] == "wrong" and records["spf"]["records"] == ["v=spf1 mx +all"]
    assert "any host on the Internet" in records["spf"]["explanation"] and records["spf"]["publish"]
    assert records["dmarc"]["status"] == "wrong" and records["dmarc"]["name"] == "_dmarc.plusall.test"
    assert "dkim" not in records  # no --dkim-selector
    assert doc["verdict"]["ok"] is False and doc["verdict"]["step"] == "OPEN"
    r = check(env, "kate@good.test", "--json", "--no-sender-records")
    assert "sender_records" not in json.loads(r.stdout)


def test_dns_that_never_answers_is_reported_once(env):
    with blackhole() as silent:
        r = check(env, "kate@good.test", dns=silent)
    lines = section(r, "good.test")
    assert lines[0].startswith("   SPF: UNKNOWN: could not be looked up: ")
    assert lines[-1] == "   DKIM and DMARC: not looked up (DNS did not answer)"
