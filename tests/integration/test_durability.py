"""SPEC §4: a message acknowledged with 250 survives `kill -9`. Concurrent
senders push mail while the server is killed; every InternalId that came back
in a 250 must be in the queue afterwards, and the restarted server goes on
with higher ids."""
import threading

from ternlib import QUEUED, Client, send_until_stopped


def sender(port, acked, stop):
    """Sends messages until the server dies; records the ids it acknowledged."""
    send_until_stopped(port, stop, lambda i: f"load {i}", 900, lambda _tag, qid: acked.append(qid))


def test_kill_9_loses_no_acknowledged_message(server):
    acked, stop = [], threading.Event()
    threads = [threading.Thread(target=sender, args=(server.port, acked, stop)) for _ in range(8)]
    for t in threads:
        t.start()
    # kill once a good number of messages has been acknowledged
    while len(acked) < 300 and all(t.is_alive() for t in threads):
        threading.Event().wait(0.01)
    server.kill()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked) >= 300
    queued = {q["id"] for q in server.queue_json()}
    missing = set(acked) - queued
    assert not missing, f"{len(missing)} acknowledged messages lost"
    # restart: recovery from the spool, and new ids above all old ones
    server.start()
    with Client(server.port) as c:
        c.start_data()
        new_id = int(QUEUED.match(c.cmd("Subject: after\r\n\r\nx\r\n.")).group(1))
    assert new_id > max(queued)
    assert server.stop() == 0
    assert len(server.queue_json()) == len(queued) + 1
