"""pytest fixtures for tern's integration tests (see ternlib.py)."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from ternlib import TernServer, base_config  # noqa: E402

# Fixtures defined next to their helpers, made available to every test module.
from delivery_env import mta  # noqa: E402,F401
from dovecot_peer import make_dovecot  # noqa: E402,F401
from peers import make_peer  # noqa: E402,F401
from postfix_peer import make_postfix  # noqa: E402,F401


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
