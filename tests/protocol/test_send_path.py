"""The send path a socket sees: frames held back while it stops reading, then every one in order, then live ones."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import ServerFactory
from tests.support.harness import Client, ServerProcess, StuckClient, token

BIG = "é" * 250  # about 600 bytes a frame: a few hundred overflow the kernel's and the transport's buffers


@pytest.fixture(scope="module")
def roomy_server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(CHAT_OUTBOUND_QUEUE_FRAMES="1024", CHAT_SOCKET_SEND_BUFFER_BYTES="16384")


class FrameReader:
    """Reads a stuck client's socket at last: the server's unmasked frames, decoded in order."""

    def __init__(self, stuck: StuckClient) -> None:
        self._sock = stuck.sock
        self._buffer = b""

    async def next(self, timeout: float = 15.0) -> Any:
        loop = asyncio.get_running_loop()
        while (frame := self._take()) is None:
            chunk = await asyncio.wait_for(loop.sock_recv(self._sock, 65536), timeout)
            assert chunk, "the server closed the socket"
            self._buffer += chunk
        return frame

    def _take(self) -> Any:
        if len(self._buffer) < 2:
            return None
        size, start = self._buffer[1] & 0x7F, 2
        if size == 126:
            if len(self._buffer) < 4:
                return None
            size, start = struct.unpack("!H", self._buffer[2:4])[0], 4
        elif size == 127:
            if len(self._buffer) < 10:
                return None
            size, start = struct.unpack("!Q", self._buffer[2:10])[0], 10
        if len(self._buffer) < start + size:
            return None
        opcode, payload = self._buffer[0] & 0x0F, self._buffer[start : start + size]
        self._buffer = self._buffer[start + size :]
        assert opcode == 0x1, f"expected a text frame, got opcode {opcode}"
        return json.loads(payload)


async def test_a_client_that_stops_reading_then_reads_gets_every_frame_in_order_then_live_ones(
    roomy_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    stuck = await StuckClient.connect(roomy_server.port, token(new_id()))
    try:
        reader = FrameReader(stuck)
        assert await reader.next() == {"event": "ready", "data": True}
        sender = await Client.connect(roomy_server, token(new_id()))
        for n in range(400):  # about 240 kB: far more than the socket's buffers, well inside its 1,024 frames
            await sender.send({"event": "globalMessage", "data": {"content": f"{n} {BIG}"}})
        for n in range(400):
            assert (await sender.recv(timeout=20))["message"]["content"] == f"{n} {BIG}"
        received = [(await reader.next())["message"] for _ in range(400)]
        assert [message["content"] for message in received] == [f"{n} {BIG}" for n in range(400)]
        await asyncio.sleep(0.5)  # idle again: nothing waits for this socket
        for n in range(3):
            assert (await sender.post("global", f"live {n}"))["content"] == f"live {n}"
            assert (await reader.next())["message"]["content"] == f"live {n}"
    finally:
        stuck.close()
