"""`tern mx DOMAIN` (SPEC §1) against a real DNS server: dnsmasq on 127.0.0.1
with known records (dns_server.py). Checks the route delivery would use
(RFC 5321 §5.1: preference order, implicit MX; RFC 7505: null MX), the
explanations, the JSON for scripts, the exit codes, and that a DNS server
that does not answer gives a clear temporary failure in bounded time.
"""

import json
import os
import re
import subprocess
import time

import pytest

from dns_server import DnsServer, blackhole, free_port

TERN = os.environ.get("TERN_BINARY", "/work/main/build/tern")

EXIT_PERMANENT, EXIT_USAGE, EXIT_TEMPORARY = 1, 2, 75

MX = [  # listed least preferred first: tern must sort them
    ("example.test", "mx3.example.test", 30),
    ("example.test", "mx2.example.test", 20),
    ("example.test", "mx1.example.test", 10),
    ("equal.test", "a.equal.test", 10),
    ("equal.test", "b.equal.test", 10),
    ("nullmx.test", ".", 0),
    ("badmx.test", "missing.badmx.test", 10),
]
HOSTS = [
    ("mx1.example.test", "127.0.0.2"),
    ("mx1.example.test", "::ffff:127.0.0.2"),
    ("mx2.example.test", "127.0.0.3", 60),
    ("mx3.example.test", "127.0.0.4"),
    ("a.equal.test", "127.0.0.6"),
    ("b.equal.test", "127.0.0.7"),
    ("nomx.test", "127.0.0.5"),
]
# More MX records than fit a 512-octet UDP answer (RFC 1035 §4.2.1): c-ares
# retries over TCP; and more hosts than tern looks up (dns::kMaxMxHosts = 20).
BIG = [(f"mail-exchanger-number-{i:02}.big.test", 10 + i) for i in range(30)]
MX += [("big.test", host, preference) for host, preference in BIG]
HOSTS += [(host, f"127.0.1.{i + 1}") for i, (host, _) in enumerate(BIG)]


@pytest.fixture(scope="module")
def dns():
    with DnsServer(mx=MX, hosts=HOSTS, ttl=3600) as server:
        yield server


def tern_mx(*args, timeout=30, cwd=None):
    return subprocess.run([TERN, "mx", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def ask(dns, domain, *args):
    return tern_mx(domain, "--dns-server", dns.address, *args)


def ask_json(dns, domain):
    result = ask(dns, domain, "--json")
    return result, json.loads(result.stdout)


def one_error_line(result):
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tern: "), result.stderr
    return lines[0]


def test_most_preferred_first_with_addresses_and_ttls(dns):
    result = ask(dns, "example.test")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    records = re.findall(r"^example\.test\s+MX preference = (\d+), mail exchanger = (\S+)\s+\(TTL (\d+)\)$",
                         out, re.M)
    assert records == [("10", "mx1.example.test", "3600"), ("20", "mx2.example.test", "3600"),
                       ("30", "mx3.example.test", "3600")]
    assert re.search(r"^\s+mx1\.example\.test  internet address = 127\.0\.0\.2\s+\(TTL 3600\)$", out, re.M)
    assert re.search(r"^\s+mx1\.example\.test  AAAA IPv6 address = ::ffff:127\.0\.0\.2\s+\(TTL 3600\)$", out, re.M)
    assert re.search(r"^\s+mx2\.example\.test  internet address = 127\.0\.0\.3\s+\(TTL 60\)$", out, re.M)
    # each host's addresses come right after its MX line
    assert out.index("mail exchanger = mx2") < out.index("= 127.0.0.3") < out.index("mail exchanger = mx3")
    assert "example.test can receive mail" in out


def test_json_for_scripts(dns):
    result, data = ask_json(dns, "example.test")
    assert result.returncode == 0
    assert data["domain"] == "example.test"
    assert data["can_receive_mail"] is True
    assert data["route"] == "mx" and data["status"] == "ok"
    assert data["dns_servers"] == [dns.address]
    assert [(h["preference"], h["exchange"]) for h in data["mx"]] == [
        (10, "mx1.example.test"), (20, "mx2.example.test"), (30, "mx3.example.test")]
    first = data["mx"][0]
    assert first["ttl"] == 3600 and first["usable"] is True and first["implicit"] is False
    assert first["addresses"] == [
        {"address": "127.0.0.2", "family": "ipv4", "ttl": 3600},
        {"address": "::ffff:127.0.0.2", "family": "ipv6", "ttl": 3600}]
    assert data["mx"][1]["addresses"] == [{"address": "127.0.0.3", "family": "ipv4", "ttl": 60}]
    assert "failure" not in data


def test_equal_preferences_are_all_listed(dns):
    _, data = ask_json(dns, "equal.test")
    assert sorted(h["exchange"] for h in data["mx"]) == ["a.equal.test", "b.equal.test"]
    assert {h["preference"] for h in data["mx"]} == {10}
    assert "random order" in data["meaning"]


def test_null_mx_accepts_no_mail(dns):
    result = ask(dns, "nullmx.test")
    assert result.returncode == EXIT_PERMANENT
    assert re.search(r"^nullmx\.test\s+MX preference = 0, mail exchanger = \.\s+\(TTL 3600\)$", result.stdout, re.M)
    error = one_error_line(result)
    assert "nullmx.test accepts no mail" in error and "null MX (RFC 7505)" in error and "556 5.1.10" in error
    result, data = ask_json(dns, "nullmx.test")
    assert result.returncode == EXIT_PERMANENT
    assert data["route"] == "null_mx" and data["status"] == "permanent" and data["can_receive_mail"] is False
    assert (data["failure"]["code"], data["failure"]["enhanced"]) == (556, "5.1.10")


def test_no_mx_falls_back_to_the_address(dns):
    result = ask(dns, "nomx.test")
    assert result.returncode == 0, result.stderr
    assert "nomx.test   has no MX records: mail goes to the domain's own address (implicit MX)" in result.stdout
    assert re.search(r"^\s+nomx\.test  internet address = 127\.0\.0\.5\s+\(TTL 3600\)$", result.stdout, re.M)
    assert "RFC 5321 §5.1" in result.stdout
    _, data = ask_json(dns, "nomx.test")
    assert data["route"] == "implicit_mx" and data["can_receive_mail"] is True
    assert data["mx"] == [{"exchange": "nomx.test", "preference": 0, "ttl": 0, "implicit": True, "usable": True,
                           "addresses": [{"address": "127.0.0.5", "family": "ipv4", "ttl": 3600}]}]


def test_nxdomain_does_not_exist(dns):
    result = ask(dns, "nx.test")
    assert result.returncode == EXIT_PERMANENT
    assert result.stdout == ""
    assert "nx.test does not exist (NXDOMAIN)" in one_error_line(result)
    _, data = ask_json(dns, "nx.test")
    assert data["route"] == "nxdomain" and data["mx"] == []
    assert data["failure"]["enhanced"] == "5.1.2"


def test_mx_host_without_address(dns):
    result = ask(dns, "badmx.test")
    assert result.returncode == EXIT_PERMANENT
    assert re.search(r"^\s+missing\.badmx\.test  host does not exist \(NXDOMAIN\)$", result.stdout, re.M)
    assert "No mail exchanger of badmx.test has an address" in one_error_line(result)


def test_large_answer_over_tcp_and_host_cap(dns):
    result, data = ask_json(dns, "big.test")
    assert result.returncode == 0, result.stderr
    assert [h["exchange"] for h in data["mx"]] == [host for host, _ in BIG]
    assert [h["usable"] for h in data["mx"]] == [True] * 20 + [False] * 10
    assert data["mx"][19]["addresses"][0]["address"] == "127.0.1.20"
    assert data["mx"][20]["note"] == "not looked up: more than 20 MX hosts"


def test_servers_from_the_configuration(dns, tmp_path):
    config = tmp_path / "tern.toml"
    config.write_text(f"""hostname = "mail.example.test"
[[listener]]
name = "default"
address = "127.0.0.1:2525"
[spool]
path = "spool"
[dns]
servers = ["{dns.address}"]
""")
    result = tern_mx("example.test", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mail exchanger = mx1.example.test" in result.stdout


def test_refused_is_a_temporary_failure(dns):
    result = ask(dns, "outside.invalid")  # not in dnsmasq's local zone: REFUSED
    assert result.returncode == EXIT_TEMPORARY
    assert "temporary DNS failure for outside.invalid" in one_error_line(result)
    _, data = ask_json(dns, "outside.invalid")
    assert data["route"] == "temporary" and data["status"] == "temporary"
    assert (data["failure"]["code"], data["failure"]["enhanced"]) == (451, "4.4.3")


def test_closed_port_is_a_temporary_failure():
    start = time.monotonic()
    result = tern_mx("example.test", "--dns-server", f"127.0.0.1:{free_port()}")
    assert time.monotonic() - start < 15
    assert result.returncode == EXIT_TEMPORARY
    error = one_error_line(result)
    assert "temporary DNS failure for example.test" in error and "try again later" in error


def test_silent_server_times_out_instead_of_hanging():
    with blackhole() as address:
        start = time.monotonic()
        result = tern_mx("example.test", "--dns-server", address, timeout=60)
        elapsed = time.monotonic() - start
    assert elapsed < 15, elapsed
    assert result.returncode == EXIT_TEMPORARY
    error = one_error_line(result)
    assert "temporary DNS failure" in error and "Timeout" in error and address in error


def test_bad_arguments_are_one_line_errors():
    for args in (["example.test", "--dns-server", "dns.example.test"], ["not a domain"], []):
        result = tern_mx(*args)
        assert result.returncode == EXIT_USAGE, (args, result.stderr)
        assert result.stdout == ""
        one_error_line(result)
