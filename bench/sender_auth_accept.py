#!/usr/bin/python3
"""Accept throughput of `tern serve` with sender checks on and off (issue 11).

A private dnsmasq publishes the SPF, DKIM key (RSA 2048, made by `tern dkim
keygen`) and DMARC records of bench.test; SESSIONS client processes each
hold one SMTP session from 127.0.0.1 (not a relay network, not
authenticated) and send 1 KB messages signed by dkimpy (signed before the
clock starts) until the total is sent; delivery is off, so what is measured
is accepting: the checks and the spool's synced commit. One run per mode.
Prints messages/s and the CPU time of the tern process per message.

    /usr/bin/python3 bench/sender_auth_accept.py [--messages N] [--sessions S] [--tern build/tern]
"""
import argparse
import multiprocessing
import os
import pathlib
import re
import smtplib
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))

import dkim  # noqa: E402  (python3-dkim)

from dns_server import TxtDnsServer  # noqa: E402


def cpu_seconds(pid):
    """utime + stime of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def message(i):
    body = ("This line pads the benchmark message to about one kilobyte of text.\r\n" * 12)
    return (f"From: Bench <u@bench.test>\r\nTo: <kate@example.test>\r\nSubject: bench {i}\r\n"
            f"Date: Thu, 3 Dec 2026 10:00:00 +0000\r\nMessage-ID: <bench.{i}@bench.test>\r\n"
            f"\r\n{body}").encode()


def sender(port, messages, count, barrier, out):
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.bench.test", timeout=120) as s:
        s.ehlo("client.bench.test")
        barrier.wait()
        for n in range(count):
            s.sendmail("u@bench.test", ["kate@example.test"], messages[n % len(messages)])
    out.put(count)


def run(tern_binary, folder, dns, verify, total, sessions, messages):
    (folder / "mail").mkdir(parents=True, exist_ok=True)
    config = folder / "tern.toml"
    config.write_text(
        'hostname = "mail.example.test"\n'
        '[spool]\npath = "spool"\nmin_free = "1MB"\n'
        '[domains]\naccepted = ["example.test"]\n'
        '[[mailbox]]\naddress = "kate@example.test"\nmaildir = "mail/kate"\n'
        '[log]\ndirectory = "log"\n'
        '[delivery]\nenabled = false\n'
        f'[dns]\nservers = ["{dns.address}"]\n'
        f'[sender_auth]\nverify = {"true" if verify else "false"}\ndmarc_reject = true\n'
        '[[listener]]\nname = "default"\naddress = "127.0.0.1:0"\n'
        'max_connections_per_source = 100\n')
    proc = subprocess.Popen([tern_binary, "serve", "--config", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    port = None
    for line in proc.stderr:
        if line.startswith("tern: listening"):
            port = int(line.split()[3].rpartition(":")[2])
        if line.startswith("tern: ready"):
            break
    assert port, "tern did not start: " + line + proc.stderr.read()
    try:
        barrier = multiprocessing.Barrier(sessions + 1)
        out = multiprocessing.Queue()
        share = [total // sessions + (1 if i < total % sessions else 0) for i in range(sessions)]
        workers = [multiprocessing.Process(target=sender, args=(port, messages, n, barrier, out))
                   for n in share]
        for w in workers:
            w.start()
        barrier.wait()
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        sent = sum(out.get(timeout=600) for _ in workers)
        t1, cpu1 = time.monotonic(), cpu_seconds(proc.pid)
        for w in workers:
            w.join()
        assert sent == total
        if verify:  # the checks really ran, and passed
            listed = subprocess.run([tern_binary, "queue", "list", "--json", "--config", str(config)],
                                    capture_output=True, text=True, check=True).stdout
            first = re.search(r'"id": ?(\d+)', listed).group(1)
            shown = subprocess.run([tern_binary, "queue", "show", first, "--config", str(config)],
                                   capture_output=True, text=True, check=True).stdout
            assert re.search(r"spf=pass[\s\S]*dkim=pass[\s\S]*dmarc=pass", shown), shown[:2000]
        return {"verify": verify, "messages": sent, "seconds": t1 - t0, "per_second": sent / (t1 - t0),
                "cpu_ms_per_message": (cpu1 - cpu0) * 1000 / sent}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--tern", default=str(HERE.parent / "build" / "tern"))
    a = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tern-bench-auth-") as tmp:
        tmp = pathlib.Path(tmp)
        tmp.chmod(0o711)  # run as root, tern serve works as user tern: it must search the folder
        keys = tmp / "keys"
        keys.mkdir()
        out = subprocess.run([a.tern, "dkim", "keygen", "bench.test", "py", "--out", str(keys)],
                             capture_output=True, text=True, check=True)
        line = [l for l in out.stdout.splitlines() if "IN TXT" in l][0]
        record = "".join(re.findall(r'"([^"]*)"', line))
        key = (keys / "bench.test.py.pem").read_bytes()
        # 100 distinct messages, each signed by dkimpy; the senders cycle through them.
        messages = []
        for i in range(100):
            m = message(i)
            messages.append(dkim.sign(m, b"py", b"bench.test", key) + m)
        assert len(messages[0]) > 1000
        txt = [("bench.test", "v=spf1 ip4:127.0.0.1 -all"),
               ("_dmarc.bench.test", "v=DMARC1; p=reject"),
               ("py._domainkey.bench.test", ",".join(record[i:i + 255] for i in range(0, len(record), 255)))]
        with TxtDnsServer(txt=txt, ttl=3600) as dns:
            results = [run(a.tern, tmp / name, dns, verify, a.messages, a.sessions, messages)
                       for name, verify in (("off", False), ("on", True))]
    print(f"{a.messages} messages of {len(messages[0])} bytes, {a.sessions} sessions, one run each")
    for r in results:
        print(f"verification {'on ' if r['verify'] else 'off'}: {r['per_second']:8.1f} messages/s, "
              f"tern CPU {r['cpu_ms_per_message']:.3f} ms/message ({r['seconds']:.1f} s)")
    off, on = results
    print(f"throughput cost of verification: {100 * (1 - on['per_second'] / off['per_second']):.1f} %, "
          f"CPU +{on['cpu_ms_per_message'] - off['cpu_ms_per_message']:.3f} ms/message")


if __name__ == "__main__":
    main()
