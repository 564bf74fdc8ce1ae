"""Shared fixtures: chat servers as real processes, one per store backend, and fresh ids per test."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.support.game_client import GameClient
from tests.support.harness import Client, ServerProcess

pytest_plugins = ["tests.support.standin_fixtures", "tests.support.browser"]

ServerFactory = Callable[..., ServerProcess]

# memory: the embedded store. wire: MongoStore through real PyMongo to the MongoDB wire-protocol stand-in
# (tests/support/mongo_standin.py), which several processes can share. mongodb: a real server, when MONGODB_URL is set.
STORE_BACKENDS = ["memory", "wire"] + (["mongodb"] if os.environ.get("MONGODB_URL") else [])


def _backend_env(backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """Environment that puts a server on one store backend; players always come from token claims."""
    if backend == "memory":
        return {}
    url = request.getfixturevalue("mongo_standin_url") if backend == "wire" else os.environ["MONGODB_URL"]
    return {"MONGODB_URL": url, "MONGODB_DB": f"chat_test_{secrets.token_hex(4)}", "CHAT_PLAYERS_FROM_DB": "false"}


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Start extra servers with their own settings; all are stopped at the end of the session."""
    log_dir: Path = tmp_path_factory.mktemp("server-logs")
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        server = ServerProcess(env=env).start(log_dir)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session", params=STORE_BACKENDS)
def server(request: pytest.FixtureRequest, server_factory: ServerFactory) -> ServerProcess:
    """The default server, once per store backend, so the protocol suite runs over each."""
    return server_factory(**_backend_env(request.param, request))


@pytest.fixture(scope="session")
def embedded_server(server_factory: ServerFactory) -> ServerProcess:
    """The embedded default (memory store, in-process broker) for tests that need just one backend."""
    return server_factory()


@pytest.fixture
def new_id() -> Callable[[], str]:
    """Fresh 24-hex ids, so tests sharing a server never see each other's players, clans or messages."""
    return lambda: secrets.token_hex(12)


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    """Close every client a test opened, passed or failed, so no socket outlives its test."""
    yield
    opened, Client.opened = Client.opened, []
    games, GameClient.opened = GameClient.opened, []
    clients: list[Client | GameClient] = [*opened, *games]
    await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
