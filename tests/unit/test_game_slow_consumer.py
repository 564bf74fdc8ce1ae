"""In-process: a game socket that reads too slowly loses its oldest queued frames; a wiki socket is cut."""

from __future__ import annotations

import asyncio
from typing import Any

from chatserver.connection import Connection, ConnectionState
from chatserver.players import Player
from chatserver.protocol.vocabulary import Dialect


class SlowSocket:
    """Stands in for Starlette's WebSocket: ``send`` waits until the test opens ``gate``."""

    def __init__(self) -> None:
        self.scope: dict[str, Any] = {}
        self.gate = asyncio.Event()
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        await self.gate.wait()
        self.sent.append(message["text"])

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def fill(dialect: Dialect) -> tuple[SlowSocket, Connection]:
    socket = SlowSocket()
    connection = Connection(socket, Player("p", "P", None, None), 3, dialect=dialect)  # type: ignore[arg-type]
    connection.start()
    for n in range(10):
        connection.push(str(n))
        await asyncio.sleep(0)  # the writer takes "0" and waits in its send
    return socket, connection


async def test_a_slow_game_socket_keeps_the_newest_frames_and_stays_open() -> None:
    socket, connection = await fill(Dialect.GAME)
    socket.gate.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert socket.sent == ["0", "7", "8", "9"]
    assert connection.state is ConnectionState.OPEN and socket.closed is None
    await connection.stop()


async def test_a_slow_wiki_socket_is_cut_as_a_slow_consumer() -> None:
    socket, connection = await fill(Dialect.WIKI)
    assert connection.state is ConnectionState.CLOSING
    socket.gate.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert socket.sent == ["0"] and socket.closed == (1008, "slow consumer")
    await connection.stop()
