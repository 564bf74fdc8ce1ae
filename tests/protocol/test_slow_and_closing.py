"""Sockets that end: a client that stops reading, a token that expires, a replica that is told to stop."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.conftest import ServerFactory
from tests.protocol.test_metrics import scrape
from tests.support.harness import Client, ServerProcess, StuckClient, suite_env, token
from tools.cluster import Cluster

BIG = "é" * 250  # a frame of about 600 bytes, so a stuck reader's buffers fill after a few hundred


async def flood(sender: Client, count: int, first: int = 0) -> None:
    """Send ``count`` global messages and wait until the sender's own copies are back."""
    for n in range(first, first + count):
        await sender.send({"event": "globalMessage", "data": {"content": f"{n} {BIG}"}})
    for n in range(first, first + count):
        assert (await sender.recv(timeout=20))["message"]["content"] == f"{n} {BIG}"


@pytest.fixture(scope="module")
def small_queue_server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(CHAT_OUTBOUND_QUEUE_FRAMES="128", CHAT_SOCKET_SEND_BUFFER_BYTES="16384")


async def test_a_client_that_stops_reading_is_cut_while_a_hundred_others_get_everything(
    small_queue_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    stuck = await StuckClient.connect(small_queue_server.port, token(new_id()))
    try:
        readers = await asyncio.gather(*(Client.connect(small_queue_server, token(new_id())) for _ in range(100)))
        sender = await Client.connect(small_queue_server, token(new_id()))
        batch, sent = 32, 0
        while "cutting slow consumer" not in small_queue_server.log():
            assert sent < 5000, "the stuck client was never cut"
            await flood(sender, batch, first=sent)
            batches = await asyncio.gather(*(read_batch(reader, batch) for reader in readers))
            expected = [f"{n} {BIG}" for n in range(sent, sent + batch)]
            assert all(received == expected for received in batches)
            sent += batch
        await stuck.read_until_closed(timeout=15)
        assert (await scrape(small_queue_server.http_url))[("chat_slow_consumer_disconnects_total", ())] == 1
    finally:
        stuck.close()


async def read_batch(reader: Client, count: int) -> list[str]:
    return [(await reader.recv())["message"]["content"] for _ in range(count)]


async def test_socket_is_closed_with_4401_when_its_token_expires(
    embedded_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    client = await Client.connect(embedded_server, token(new_id(), exp_in=2))
    await asyncio.wait_for(client.connection.wait_closed(), 10)
    assert (client.connection.close_code, client.connection.close_reason) == (4401, "token expired")


async def test_sigterm_drains_a_replica_with_1012_while_the_other_keeps_serving(
    tmp_path: Path, new_id: Callable[[], str]
) -> None:
    drain_seconds = 6
    env = suite_env(
        CHAT_DRAIN_SECONDS=str(drain_seconds),
        CHAT_OUTBOUND_QUEUE_FRAMES="100000",
        CHAT_SOCKET_SEND_BUFFER_BYTES="16384",
    )
    with Cluster(2, workdir=tmp_path / "c", env=env) as cluster:
        leaving, staying = cluster.replicas
        on_leaving = [await Client.open(leaving.ws_url, token(new_id())) for _ in range(10)]
        on_staying = [await Client.open(staying.ws_url, token(new_id())) for _ in range(10)]
        stuck = await StuckClient.connect(leaving.port, token(new_id()))
        sender = await Client.open(staying.ws_url, token(new_id()))
        try:
            await flood(sender, 300)  # the stuck client's buffers are full now: it holds the drain open
            for client in on_leaving + on_staying:
                for _ in range(300):
                    await client.recv()

            assert leaving.process.popen is not None
            stopped_at = time.monotonic()
            leaving.process.ask_to_stop()
            await wait_for_status(f"{leaving.url}/readyz", 503)
            with pytest.raises(InvalidStatus) as refused:
                await websockets.connect(f"{leaving.ws_url}?token={token(new_id())}")
            assert refused.value.response.status_code == 503
            for client in on_leaving:
                await asyncio.wait_for(client.connection.wait_closed(), drain_seconds)
                assert (client.connection.close_code, client.connection.close_reason) == (1012, "service restart")

            await asyncio.to_thread(leaving.process.popen.wait, drain_seconds + 5)
            assert time.monotonic() - stopped_at < drain_seconds + 1.5
            assert leaving.process.popen.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
            assert "Application shutdown complete." in leaving.log_path.read_text()

            await sender.post("global", "still serving")
            for client in on_staying:
                assert (await client.recv())["message"]["content"] == "still serving"
        finally:
            stuck.close()


async def wait_for_status(url: str, status: int, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1) as http:
        while (await http.get(url)).status_code != status:
            assert time.monotonic() < deadline, f"{url} never answered {status}"
            await asyncio.sleep(0.02)


def test_sigterm_on_an_idle_server_exits_promptly(server_factory: ServerFactory) -> None:
    server = server_factory()
    assert server.process is not None
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    assert "Application shutdown complete." in server.log()
    assert time.monotonic() - started < 3
