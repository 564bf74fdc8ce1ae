"""Accepted Starlette WebSockets in this process, for unit tests of one connection or one hub.

The ASGI side is an in-memory channel: what the server sends is recorded in order, and a test can
hold the sends (``gate``) to play a client that stopped reading.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Message
from starlette.websockets import WebSocket

from chatserver.connection import Connection
from chatserver.players import Player
from chatserver.protocol.vocabulary import Dialect

SEND_TIMEOUT = 5.0


class Peer:
    """The client end of one in-process socket: the messages the server sent, in order."""

    def __init__(self) -> None:
        self.sent: asyncio.Queue[Message] = asyncio.Queue()
        self.gate = asyncio.Event()
        self.gate.set()
        self.sending = asyncio.Event()  # set once the server is inside a send (held there while gate is clear)

    async def receive(self) -> Message:
        await asyncio.Event().wait()  # the client never sends after connecting
        raise AssertionError("unreachable")

    async def send(self, message: Message) -> None:
        self.sending.set()
        await self.gate.wait()
        self.sent.put_nowait(message)

    async def next(self) -> Any:
        """The next frame's text, or ``("close", code, reason)`` for the close frame."""
        message = await asyncio.wait_for(self.sent.get(), SEND_TIMEOUT)
        if message["type"] == "websocket.close":
            return ("close", message["code"], message.get("reason", ""))
        return message["text"]


async def open_connection(
    player: Player, queue_frames: int = 8, dialect: Dialect = Dialect.WIKI
) -> tuple[Connection, Peer]:
    """A started ``Connection`` on an accepted socket, and the peer that sees what it sends."""
    peer = Peer()
    connected = asyncio.Queue[Message]()
    connected.put_nowait({"type": "websocket.connect"})

    async def receive() -> Message:
        return connected.get_nowait() if not connected.empty() else await peer.receive()

    scope = {"type": "websocket", "path": "/ws/chat", "headers": [], "query_string": b""}
    websocket = WebSocket(scope, receive, peer.send)
    await websocket.accept()
    assert (await asyncio.wait_for(peer.sent.get(), SEND_TIMEOUT))["type"] == "websocket.accept"
    connection = Connection(websocket, player, queue_frames, dialect=dialect)
    connection.start()
    return connection, peer


def player(player_id: str, clan_id: str | None = None) -> Player:
    return Player(id=player_id, name=f"name-{player_id}", avatar=None, clan_id=clan_id)
