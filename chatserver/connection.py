"""One accepted socket: who is on it, which rooms it is in, and its bounded outbound queue.

Fan-out only appends to the queue; the socket's own writer task does the (possibly slow) send, so
one client that stops reading never delays delivery to anyone else. Two ways to end a socket:
``finish`` sends what is queued and then a close frame (drain, token expiry); ``cut`` drops the queue
and closes at once, aborting the TCP connection if the peer does not take the close frame (a client
whose queue filled up, close code 1008 "slow consumer").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from enum import Enum

from starlette.websockets import WebSocket

from chatserver import metrics
from chatserver.players import Player

log = logging.getLogger(__name__)

SLOW_CONSUMER = (1008, "slow consumer")
CLOSE_FRAME_SECONDS = 2.0
_ids = itertools.count(1)


class ConnectionState(Enum):
    OPEN = "open"
    CLOSING = "closing"


class Connection:
    """A socket of one player, member of one or more rooms of this worker's hub."""

    def __init__(
        self, websocket: WebSocket, player: Player, queue_frames: int, abort: Callable[[], None] | None = None
    ) -> None:
        self.id = next(_ids)
        self.websocket = websocket
        self.player = player
        self.rooms: set[str] = set()
        self.state = ConnectionState.OPEN
        self.close_code: int | None = None
        self._abort = abort
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue(maxsize=queue_frames)
        self._close_reason = ""
        self._writer: asyncio.Task[None] | None = None
        self._held: list[str] | None = None

    def start(self) -> None:
        """Start the writer task; frames pushed before this wait in the queue."""
        self._writer = asyncio.create_task(self._write_forever(), name=f"writer-{self.id}")

    async def stop(self) -> None:
        """Stop the writer once the socket is gone (the receive loop ended)."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    def hold(self) -> None:
        """Keep pushed frames aside until ``release``: the socket is joining its rooms (and resuming)."""
        self._held = []

    def release(self, first: list[str], skip: Callable[[str], bool] | None = None) -> None:
        """Queue ``first`` (``ready``, after any replay), then the held frames that ``skip`` does not reject."""
        held, self._held = self._held or [], None
        for text in first:
            self.push(text)
        for text in held:
            if skip is None or not skip(text):
                self.push(text)

    def push(self, text: str) -> None:
        """Queue a frame without waiting; a full queue means the client is too slow and is cut."""
        if self.state is not ConnectionState.OPEN:
            return
        if self._held is not None:
            self._held.append(text)
            if len(self._held) > self._outbox.maxsize:
                self.cut(*SLOW_CONSUMER)
            return
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("cutting slow consumer", extra={"player_id": self.player.id, "connection": self.id})
            metrics.SLOW_CONSUMERS.inc()
            self.cut(*SLOW_CONSUMER)

    def finish(self, code: int, reason: str) -> None:
        """Close after every frame queued so far is sent (drain, token expiry)."""
        if self.state is not ConnectionState.OPEN:
            return
        self._begin_closing(code, reason)
        try:
            self._outbox.put_nowait(None)
        except asyncio.QueueFull:
            self.cut(code, reason)

    def cut(self, code: int, reason: str) -> None:
        """Close now, dropping what is queued, and abort the TCP connection ``CLOSE_FRAME_SECONDS`` later.

        The peer is too slow or gone: the close frame may sit behind bytes it never reads (the writer
        may even be stuck in a send), so the abort does not wait for the closing handshake.
        """
        self._begin_closing(code, reason)
        self._held = None
        while not self._outbox.empty():
            self._outbox.get_nowait()
        self._outbox.put_nowait(None)
        asyncio.get_running_loop().call_later(CLOSE_FRAME_SECONDS, self._abort_transport)

    def _begin_closing(self, code: int, reason: str) -> None:
        if self.state is ConnectionState.OPEN:
            self.state = ConnectionState.CLOSING
            self.close_code, self._close_reason = code, reason

    async def _write_forever(self) -> None:
        while True:
            text = await self._outbox.get()
            if text is None:
                break
            await self.websocket.send_text(text)
        assert self.close_code is not None
        with contextlib.suppress(Exception):  # the peer may already be gone; the receive loop sees that
            await self.websocket.close(self.close_code, self._close_reason)

    def _abort_transport(self) -> None:
        if self._abort is not None:
            self._abort()
