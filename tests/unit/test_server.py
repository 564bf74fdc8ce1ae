"""``ChatServer`` in this process: told to stop, it drains the services of the app it serves first."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import uvicorn
import websockets

from chatserver.app import create_app
from chatserver.server import ChatServer, listen
from chatserver.settings import Settings
from tests.support.harness import TEST_SECRET, token

START_TIMEOUT = 10.0


@pytest.fixture
async def running() -> AsyncIterator[tuple[ChatServer, str]]:
    """An embedded app served by ``ChatServer`` on a free port, and that port's address."""
    app = create_app(Settings(jwt_secret=TEST_SECRET))
    listening = listen("127.0.0.1", 0)
    address = f"127.0.0.1:{listening.getsockname()[1]}"
    config = uvicorn.Config(app, ws="websockets-sansio", lifespan="on", log_config=None, timeout_graceful_shutdown=1)
    server = ChatServer(config, app.services, drain_seconds=3)
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    async with asyncio.timeout(START_TIMEOUT):
        while not server.started:
            await asyncio.sleep(0.01)
    try:
        yield server, address
    finally:
        server.should_exit = True
        await serving
        listening.close()


async def test_a_stopping_server_drains_its_sockets_with_1012_before_uvicorn_closes_them(
    running: tuple[ChatServer, str],
) -> None:
    server, address = running
    async with websockets.connect(f"ws://{address}/ws/chat?token={token('p1', clan_id='c1')}") as client:
        assert json.loads(await client.recv()) == {"event": "ready", "data": True}
        server.should_exit = True  # what uvicorn's SIGTERM handler does
        async with asyncio.timeout(START_TIMEOUT):
            await client.wait_closed()
        assert (client.close_code, client.close_reason) == (1012, "service restart")  # uvicorn's has no reason
