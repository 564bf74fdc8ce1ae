"""One accepted socket: who is on it, which rooms it is in, and its bounded outbound queue.

Fan-out only appends to the queue; the socket's own writer task does the (possibly slow) send, so
one client that stops reading never delays delivery to anyone else. A client whose queue fills up
is cut with close code 1008 ("slow consumer").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from enum import Enum

from starlette.websockets import WebSocket

from chatserver.players import Player

log = logging.getLogger(__name__)

SLOW_CONSUMER_CODE = 1008
_ids = itertools.count(1)


class ConnectionState(Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class Connection:
    """A socket of one player, member of one or more rooms of this worker's hub."""

    def __init__(self, websocket: WebSocket, player: Player, queue_frames: int) -> None:
        self.id = next(_ids)
        self.websocket = websocket
        self.player = player
        self.rooms: set[str] = set()
        self.state = ConnectionState.OPEN
        self._outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_frames)

    def push(self, text: str) -> None:
        """Queue a frame for this socket without waiting; a full queue marks the client too slow."""
        if self.state is not ConnectionState.OPEN:
            return
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("closing slow consumer", extra={"player_id": self.player.id, "connection": self.id})
            self.close_soon(SLOW_CONSUMER_CODE, "slow consumer")

    def close_soon(self, code: int, reason: str) -> None:
        """Start closing from synchronous code (fan-out); the receive loop then ends the connection."""
        if self.state is ConnectionState.OPEN:
            self.state = ConnectionState.CLOSING
            asyncio.get_running_loop().create_task(self._close(code, reason))

    async def write_forever(self) -> None:
        """The writer task: send queued frames in order until the socket goes away."""
        while True:
            text = await self._outbox.get()
            await self.websocket.send_text(text)

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.close(code, reason)
