"""Issue 9, SPEC §4: exactly-once local delivery across crashes. Senders push
mail for a local Maildir while tern receives and delivers it, and tern is
killed with SIGKILL at a random moment, round after round; after a last clean
run every message acknowledged with 250 is in the Maildir exactly once (none
lost, none delivered twice: the Maildir file name comes from the message, so a
repeated attempt finds the copy the killed one wrote) and the queue is empty."""
import random
import re
import threading
import time

from delivery_env import maildir_tags, wait_until
from ternlib import send_until_stopped

SUBJECT = re.compile(rb"^Subject: (crash-\d+-\d+-\d+)$", re.M)
ROUNDS = 30
SENDERS = 3


def sender(port, round_no, n, acked, stop):
    """Sends messages tagged crash-<round>-<sender>-<i> until stopped or the
    server dies; records {tag: InternalId} for each 250."""
    send_until_stopped(port, stop, lambda i: f"crash-{round_no}-{n}-{i}", 200, acked.__setitem__)


def test_kill_9_while_delivering_locally_delivers_each_message_once(make_server):
    server = make_server(start=False, delivery="", extra='[queue]\nretry = ["1s"]\n')
    maildir = server.folder / "mail" / "kate"
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    acked = {}
    for round_no in range(ROUNDS):
        server.start()
        stop = threading.Event()
        threads = [threading.Thread(target=sender, args=(server.port, round_no, n, acked, stop))
                   for n in range(SENDERS)]
        for t in threads:
            t.start()
        # A random moment: after a random number of this round's messages were
        # acknowledged (0 kills during start-up recovery and the first attempts).
        want = rng.randrange(0, 25)
        prefix = f"crash-{round_no}-"
        deadline = time.monotonic() + 10
        while (sum(1 for t in list(acked) if t.startswith(prefix)) < want and time.monotonic() < deadline
               and all(t.is_alive() for t in threads)):
            time.sleep(0.002)
        server.kill()
        stop.set()
        for t in threads:
            t.join(timeout=15)
            assert not t.is_alive(), "a sender did not end after the kill"
    # The last, clean run delivers what is left.
    server.start()
    wait_until(lambda: server.queue_json() == [], timeout=60, what="an empty queue")
    assert server.stop() == 0
    assert len(acked) >= ROUNDS, f"too few messages acknowledged to mean anything (seed {seed})"
    counts = maildir_tags(maildir, SUBJECT)
    missing = sorted(t for t in acked if counts.get(t, 0) == 0)
    twice = sorted(t for t, n in counts.items() if n > 1)
    assert not missing, f"{len(missing)} acknowledged message(s) never delivered, e.g. {missing[:5]} (seed {seed})"
    assert not twice, (f"{len(twice)} message(s) delivered more than once, e.g. "
                       f"{[(t, counts[t]) for t in twice[:5]]} (seed {seed}, {len(acked)} acknowledged)")
    assert server.queue_json() == []
