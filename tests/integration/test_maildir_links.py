"""Issue 9, SPEC §4 least privilege: a Maildir's tmp/ or new/ that is a
symbolic link is refused with a 4xx naming it (and logged), never followed:
nothing lands where the link points, and the message waits in the queue until
the folder is a real one again, then is delivered once."""
import shutil

from delivery_env import wait_until
from ternlib import Client


def send(server, subject, user):
    with Client(server.port, timeout=30) as c:
        c.start_data(recipient=f"{user}@example.test")
        return c.cmd(f"Subject: {subject}\r\n\r\nbody\r\n.")


def test_symlinked_tmp_and_new_are_refused(make_server):
    server = make_server(delivery="", extra='[queue]\nretry = ["1s"]\n')
    elsewhere = server.folder / "elsewhere"
    elsewhere.mkdir()
    for user, sub in (("kate", "tmp"), ("postmaster", "new")):
        target = server.folder / "mail" / user / sub
        shutil.rmtree(target, ignore_errors=True)
        target.symlink_to(elsewhere, target_is_directory=True)
        assert send(server, f"via {sub}", user).startswith("250 2.6.0 ")
        reply = wait_until(lambda: next((r.get("last_reply", "") for q in server.queue_json()
                                         for r in q["recipients"] if r["status"] == "deferred"), None),
                           what=f"a deferral for the symlinked {sub}/")
        assert reply.startswith("451 4.3.0 ") and f"{target} is a symbolic link" in reply, reply
        assert list(elsewhere.iterdir()) == []
        target.unlink()  # a real folder again: tern makes it at the next attempt
        wait_until(lambda: server.queue_json() == [], what="delivery once the link is gone")
    assert server.stop() == 0
    assert "is a symbolic link" in "".join(server.stderr_lines)
    for user, subject in (("kate", "via tmp"), ("postmaster", "via new")):
        [stored] = (server.folder / "mail" / user / "new").iterdir()
        assert f"Subject: {subject}\n" in stored.read_text()
    assert list(elsewhere.iterdir()) == []
