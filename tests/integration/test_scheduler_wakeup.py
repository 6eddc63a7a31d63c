"""The scheduler starts due work without its timer (a coalesced post) and waits
on the timer only for future due times: with one local delivery at a time
(max_local_deliveries = 1) a burst of messages must all be delivered, each
once, as every ended attempt frees the lane; messages arriving from several
connections at once are all taken (enqueues are batched)."""
import smtplib
import threading

from delivery_env import maildir_files, wait_for_maildir

BURST = 40
CONNECTIONS = 4


def send_burst(port, n, errors):
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("client.test")
            for i in range(n):
                body = f"Subject: burst\r\nMessage-ID: <burst-{port}-{threading.get_ident()}-{i}@client.test>\r\n\r\nx\r\n"
                refused = s.sendmail("chris@contoso.com", ["kate@example.test"], body)
                if refused:
                    errors.append(refused)
    except (OSError, smtplib.SMTPException) as e:
        errors.append(repr(e))


def test_a_full_local_lane_resumes_when_an_attempt_ends(mta):
    tern = mta.tern(delivery="max_local_deliveries = 1\n")
    errors = []
    threads = [threading.Thread(target=send_burst, args=(tern.port, BURST // CONNECTIONS, errors))
               for _ in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    files = wait_for_maildir(tern, "kate", BURST, timeout=60)
    assert len(files) == BURST
    ids = set()
    for f in files:
        head = f.read_bytes().split(b"\n\n", 1)[0]
        ids.update(line for line in head.split(b"\n") if line.lower().startswith(b"message-id:"))
    assert len(ids) == BURST                     # every message once
    assert len(maildir_files(tern, "kate")) == BURST
    assert tern.queue_json() == []
    assert tern.stop() == 0
