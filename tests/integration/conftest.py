"""pytest fixtures for tern's integration tests (see ternlib.py)."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from ternlib import TernServer, base_config, tern_user_missing  # noqa: E402

# Fixtures defined next to their helpers, made available to every test module.
from delivery_env import mta  # noqa: E402,F401
from dovecot_peer import make_dovecot  # noqa: E402,F401
from peers import make_peer  # noqa: E402,F401
from pgcluster import pg  # noqa: E402,F401
from postfix_peer import make_postfix  # noqa: E402,F401


def pytest_sessionstart(session):
    """Run as root (as in CI), every tern serve drops to user tern: without
    that account every test would fail the same way, so say it once, loudly."""
    why = tern_user_missing()
    if why:
        pytest.exit("cannot run the integration tests: " + why, returncode=1)


@pytest.fixture
def make_server(tmp_path):
    """make_server(listeners=[(name, toml)], extra=toml) → a started TernServer."""
    servers = []

    def make(listeners=(("default", ""),), extra="", start=True, folder=None, delivery=None):
        server = TernServer(folder or tmp_path / f"tern{len(servers)}", base_config(listeners, extra, delivery))
        servers.append(server)
        return server.start() if start else server

    yield make
    for s in servers:
        if s.proc and s.proc.poll() is None:
            s.kill()


@pytest.fixture
def server(make_server):
    return make_server()
