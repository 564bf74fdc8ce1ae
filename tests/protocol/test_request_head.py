"""The request head over a raw TCP socket, no proxy in front: endless heads are refused, slow ones cut.

Each attack writes far more than the limit while reading concurrently, as a real client would see
it: the answer (431/414/408 with the error body), then EOF, and the server's RSS barely moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from chatserver.settings import Settings, SettingsError
from tests.conftest import ServerFactory
from tests.support.harness import Client, ServerProcess, suite_env, token
from tools.cluster import Cluster

ANSWER_TIMEOUT = 5.0
LONG_LINE = b"X-Filler: " + b"f" * 500 + b"\r\n"  # 16 of them pass the byte limit before the count limit
ATTACK_BYTES = 64 * 1024 * 1024
UPGRADE = (
    "Host: chat\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@pytest.fixture(scope="module")
def head_server(server_factory: ServerFactory) -> ServerProcess:
    """A server whose head deadline is short enough to wait for in a test."""
    return server_factory(CHAT_HEAD_TIMEOUT_SECONDS="1")


def rss_kib(server: ServerProcess) -> int:
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS line")


async def attack(server: ServerProcess, start: bytes, filler: bytes, total: int = ATTACK_BYTES) -> bytes:
    """Write ``start`` then ``filler`` until ``total`` bytes or the server stops reading; return all it answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)

    async def flood() -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(start)
            block = filler * max(1, 64 * 1024 // len(filler))
            for _ in range(total // len(block)):
                writer.write(block)
                await writer.drain()

    sending = asyncio.create_task(flood())
    try:
        return await asyncio.wait_for(read_to_eof(reader), ANSWER_TIMEOUT)
    finally:
        sending.cancel()
        await close(writer)


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    answer = b""
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            answer += chunk
    return answer


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


def status_and_body(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    return int(status_line.split()[1]), json.loads(body)


def refused(status: int, message: str) -> dict[str, Any]:
    reason = "REQUIRED" if status == 408 else "MORE_THAN_MAX"
    error = {"reason": reason, "field": None, "value": None, "message": message, "additional": None}
    return {"errors": [error], "statusCode": status}


TOO_LONG_HEAD = refused(431, "The request head may be at most 8192 bytes")
TOO_LONG_LINE = refused(414, "The request line may be at most 8192 bytes")


async def test_endless_header_lines_on_plain_http_get_431_and_a_close(head_server: ServerProcess) -> None:
    answer = await attack(head_server, b"GET /healthz HTTP/1.1\r\nHost: chat\r\n", LONG_LINE)
    assert status_and_body(answer) == (431, TOO_LONG_HEAD)


async def test_many_small_header_lines_get_431_at_the_header_count(head_server: ServerProcess) -> None:
    answer = await attack(head_server, b"GET /healthz HTTP/1.1\r\nHost: chat\r\n", b"X-A: b\r\n")
    assert status_and_body(answer) == (431, refused(431, "A request may have at most 100 header fields"))


async def test_an_unparsable_request_gets_400_with_the_error_body_and_no_log_line(head_server: ServerProcess) -> None:
    answer = await attack(head_server, b"NOT HTTP AT ALL\r\n\r\n", b"", total=0)
    error = {"reason": "VALIDATION", "field": None, "value": None, "message": "The request is not valid HTTP/1.1"}
    assert status_and_body(answer) == (400, {"errors": [{**error, "additional": None}], "statusCode": 400})
    await attack(head_server, b"GET /healthz HTTP/1.1\r\n", b"X-A: b\r\n")  # the header count, a parser error too
    assert "Invalid HTTP request" not in head_server.log()


async def test_an_upgrade_to_anything_but_a_websocket_is_served_as_http_without_a_log_line(
    head_server: ServerProcess,
) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: chat\r\nConnection: Upgrade, close\r\nUpgrade: h2c\r\n\r\n"
    answer = await attack(head_server, request, b"", total=0)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert "Unsupported upgrade" not in head_server.log()


async def test_an_endless_url_gets_414_and_a_close(head_server: ServerProcess) -> None:
    answer = await attack(head_server, b"GET /chat/history?type=global&pad=", b"a" * 1024)
    assert status_and_body(answer) == (414, TOO_LONG_LINE)


async def test_one_endless_header_value_gets_431_and_a_close(head_server: ServerProcess) -> None:
    answer = await attack(head_server, b"GET /healthz HTTP/1.1\r\nHost: chat\r\nX-Big: ", b"v" * 1024)
    assert status_and_body(answer) == (431, TOO_LONG_HEAD)


async def test_an_endless_head_on_the_websocket_upgrade_gets_431_and_a_close(head_server: ServerProcess) -> None:
    start = f"GET /ws/chat HTTP/1.1\r\n{UPGRADE}".encode()
    answer = await attack(head_server, start, LONG_LINE)
    assert status_and_body(answer) == (431, TOO_LONG_HEAD)


@pytest.mark.parametrize("size", [10_000, 100_000])
async def test_an_oversized_token_in_the_query_is_answered_414_and_closed(
    head_server: ServerProcess, size: int
) -> None:
    request = f"GET /ws/chat?token={'a' * size} HTTP/1.1\r\n{UPGRADE}\r\n".encode()
    answer = await attack(head_server, request, b"", total=0)
    assert status_and_body(answer) == (414, TOO_LONG_LINE)


@pytest.mark.parametrize("size", [10_000, 100_000])
async def test_an_oversized_token_in_the_header_is_answered_431_and_closed(
    head_server: ServerProcess, size: int
) -> None:
    request = f"GET /ws/chat HTTP/1.1\r\n{UPGRADE}Authorization: Bearer {'a' * size}\r\n\r\n".encode()
    answer = await attack(head_server, request, b"", total=0)
    assert status_and_body(answer) == (431, TOO_LONG_HEAD)


async def test_endless_heads_leave_the_servers_memory_where_it_was(head_server: ServerProcess) -> None:
    await attack(head_server, b"GET /healthz HTTP/1.1\r\n", b"X-Warm-Up: 1\r\n")  # first-use allocations
    before = rss_kib(head_server)
    for start, filler in [
        (b"GET /healthz HTTP/1.1\r\nHost: chat\r\n", b"X-A: b\r\n"),
        (b"GET /healthz HTTP/1.1\r\nHost: chat\r\n", LONG_LINE),
        (b"GET /chat/history?pad=", b"a" * 1024),
        (b"GET /healthz HTTP/1.1\r\nX-Big: ", b"v" * 1024),
        (f"GET /ws/chat HTTP/1.1\r\n{UPGRADE}".encode(), LONG_LINE),
    ]:
        await asyncio.gather(*(attack(head_server, start, filler) for _ in range(10)))
    assert rss_kib(head_server) - before < 4 * 1024


async def test_a_connection_that_sends_nothing_gets_408_at_the_deadline(head_server: ServerProcess) -> None:
    answer = await attack(head_server, b"", b"", total=0)
    assert status_and_body(answer) == (408, refused(408, "The request head must arrive within 1 seconds"))


async def test_a_head_trickled_byte_by_byte_gets_408_at_the_deadline(head_server: ServerProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", head_server.port)

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(b"GET /healthz HTTP/1.1\r\n")
            while True:
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.2)

    trickling = asyncio.create_task(trickle())
    try:
        answer = await asyncio.wait_for(read_to_eof(reader), ANSWER_TIMEOUT)
    finally:
        trickling.cancel()
        await close(writer)
    assert status_and_body(answer) == (408, refused(408, "The request head must arrive within 1 seconds"))


async def test_a_head_just_under_the_limit_is_served(head_server: ServerProcess) -> None:
    padding = "p" * (8192 - 200)
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{head_server.http_url}/healthz", headers={"X-Padding": padding})
    assert response.status_code == 200


async def test_keep_alive_and_pipelined_requests_are_each_served(head_server: ServerProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", head_server.port)
    keep_alive = b"GET /healthz HTTP/1.1\r\nHost: chat\r\n\r\n"
    writer.write(keep_alive * 2 + b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(read_to_eof(reader), ANSWER_TIMEOUT)
    await close(writer)
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 3


async def test_a_socket_open_longer_than_the_head_deadline_stays_open(head_server: ServerProcess) -> None:
    client = await Client.connect(head_server, token("head-deadline-player"))
    await asyncio.sleep(1.5)
    await client.send({"event": "globalMessage", "data": {"content": "still here"}})
    frame = await client.recv()
    assert frame["event"] == "newMessage" and frame["message"]["content"] == "still here"


async def test_a_websocket_with_a_normal_token_is_accepted(head_server: ServerProcess) -> None:
    async with websockets.connect(f"{head_server.ws_url}?token={token('head-normal-player')}") as socket:
        assert json.loads(await socket.recv()) == {"event": "ready", "data": True}


async def test_a_connection_opening_while_the_pending_heads_are_full_gets_503_and_a_close(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(CHAT_MAX_PENDING_HEADS="3", CHAT_HEAD_TIMEOUT_SECONDS="30")
    socket = await Client.connect(server, token("pending-heads-player"))  # open sockets are not pending heads
    stalled = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
    for _, writer in stalled:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: chat\r\n")
        await writer.drain()
    await wait_until_refused(server)
    answer = await attack(server, b"", b"", total=0)
    message = "Too many connections are opening at once; try again shortly"
    error = {"reason": "NOT_AVAILABLE", "field": None, "value": None, "message": message, "additional": None}
    assert status_and_body(answer) == (503, {"errors": [error], "statusCode": 503})

    for _, writer in stalled:
        await close(writer)
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{server.http_url}/healthz")).status_code == 200
    await socket.send({"event": "globalMessage", "data": {"content": "unaffected"}})
    assert (await socket.recv())["message"]["content"] == "unaffected"


async def wait_until_refused(server: ServerProcess) -> None:
    """Until a probe is refused: the stalled connections' bytes may still be on their way to the server."""
    for _ in range(100):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: chat\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(read_to_eof(reader), ANSWER_TIMEOUT)
        await close(writer)
        if answer.startswith(b"HTTP/1.1 503"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the pending heads never filled")


async def test_the_proxy_in_front_refuses_a_long_request_line_first(tmp_path: Path) -> None:
    """Defence in depth: deploy/nginx.conf.template holds the same limits, so nginx answers before a replica."""
    with Cluster(1, workdir=tmp_path / "c", env=suite_env()) as cluster:
        reader, writer = await asyncio.open_connection(cluster.host, cluster.port)
        writer.write(b"GET /healthz?pad=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: chat\r\n\r\n")
        answer = await asyncio.wait_for(read_to_eof(reader), ANSWER_TIMEOUT)
        await close(writer)
        assert answer.startswith(b"HTTP/1.1 414 ") and b"nginx" in answer


@pytest.mark.parametrize("raw", ["100", "70000"])
def test_a_head_limit_outside_1_to_64_kib_refuses_to_start(raw: str) -> None:
    with pytest.raises(SettingsError, match="CHAT_HEAD_MAX_BYTES must be between 1024 and 65536"):
        Settings.from_env({"CHAT_HEAD_MAX_BYTES": raw})
