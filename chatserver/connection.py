"""One accepted socket: who is on it, its dialect, which rooms it is in, and its bounded outbound queue.

Fan-out only appends to the queue; the socket's own writer task does the (possibly slow) send, so one
client that stops reading never delays anyone else. ``finish`` sends what is queued, then closes;
``cut`` drops the queue and closes at once (a wiki socket whose queue filled up: 1008 "slow consumer").
A game socket's client never reconnects, so a full queue drops its oldest frames instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Callable
from enum import Enum

from starlette.websockets import WebSocket, WebSocketDisconnect

from chatserver import metrics
from chatserver.players import Player
from chatserver.protocol.outbound import RENDERERS, Renderer
from chatserver.protocol.vocabulary import CloseCode, Dialect
from chatserver.transport import direct_writer_of, send_of

log = logging.getLogger(__name__)

CLOSE_FRAME_SECONDS = 2.0
_ids = itertools.count(1)


class ConnectionState(Enum):
    OPEN = "open"
    CLOSING = "closing"


class Connection:
    """A socket of one player, member of one or more rooms of this worker's hub."""

    def __init__(
        self,
        websocket: WebSocket,
        player: Player,
        queue_frames: int,
        abort: Callable[[], None] | None = None,
        dialect: Dialect = Dialect.WIKI,
    ) -> None:
        self.id = next(_ids)
        self.websocket = websocket
        self.player = player
        self.dialect = dialect
        self.frames: Renderer = RENDERERS[dialect]
        self.rooms: set[str] = set()
        self.state = ConnectionState.OPEN
        self.close_code: int | None = None
        self._abort = abort
        self._send = send_of(websocket.scope) or websocket.send
        self._write_now = direct_writer_of(websocket.scope)
        self._outbox: deque[str | None] = deque()  # ``None`` last: send the close frame
        self._limit = queue_frames
        self._wakeup: asyncio.Future[None] | None = None  # set while the writer waits on an empty outbox
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
            with contextlib.suppress(Exception, asyncio.CancelledError):  # it ended on its own or was cancelled
                await self._writer

    def hold(self) -> None:
        """Keep pushed frames aside until ``release``: the socket is joining its rooms (and resuming)."""
        self._held = []

    def release(self, first: list[str], skip: Callable[[str], bool] | None = None) -> None:
        """Queue ``first`` (``ready``, after any replay), then the held frames that ``skip`` does not reject.

        ``first`` is what the server chose to send (a replay is bounded by ``CHAT_RESUME_LIMIT`` a room), so
        the socket's bound grows by its size: a resuming client is not cut for the replay it asked for, and
        the live frames behind it still get the usual room.
        """
        held, self._held = self._held or [], None
        if self.state is not ConnectionState.OPEN:
            return
        self._outbox.extend(first)
        self._limit += len(first)
        self._wake()
        for text in held:
            if skip is None or not skip(text):
                self.push(text)

    def tell(self, kind: str, text: str | None) -> None:
        """Queue a frame that is not a broadcast (``ready``, an error, a membership change) if the dialect has one.

        ``kind`` labels the frames a game socket is not sent, so operators see what its players miss.
        """
        if text is None:
            metrics.FRAMES_WITHHELD.labels(kind).inc()
            return
        self.push(text)

    def push(self, text: str, frame: bytes | None = None) -> None:
        """Queue a frame without waiting; a full queue means the client is too slow (``_overflow``).

        With ``frame`` (``text`` already serialised by ``transport.text_frame``) and the writer idle on
        an empty queue, the bytes go straight to the socket: no task wake-up, no send layers.
        """
        if self.state is not ConnectionState.OPEN:
            return
        if self._held is not None:
            self._held.append(text)
            if len(self._held) > self._limit:
                self._overflow(self._held)
            return
        if frame is not None and self._wakeup is not None and self._write_now is not None and self._write_now(frame):
            return
        if len(self._outbox) >= self._limit and not self._overflow(self._outbox):
            return
        self._outbox.append(text)
        self._wake()

    def _overflow(self, queue: deque[str | None] | list[str]) -> bool:
        """A full queue: a game socket drops its oldest frame (True: there is room now); a wiki socket is cut.

        The game client never reconnects, so a cut would cost its player live chat until the app
        resumes; a gap in a busy room is the smaller loss (history shows the rest). A wiki client
        reconnects with ``since`` and gets everything it missed, so it is cut as before.
        """
        if self.dialect is Dialect.GAME and queue and queue[0] is not None:
            if isinstance(queue, list):
                del queue[0]
            else:
                queue.popleft()
            metrics.FRAMES_DROPPED.inc()
            return True
        log.warning("cutting slow consumer", extra={"player_id": self.player.id, "connection": self.id})
        metrics.SLOW_CONSUMERS.inc()
        self.cut(CloseCode.SLOW_CONSUMER)
        return False

    def finish(self, close: CloseCode) -> None:
        """Close after every frame queued so far is sent (drain, token expiry)."""
        if self.state is not ConnectionState.OPEN:
            return
        self._begin_closing(close)
        if len(self._outbox) >= self._limit:
            self.cut(close)
            return
        self._outbox.append(None)
        self._wake()

    def cut(self, close: CloseCode) -> None:
        """Close now, dropping what is queued, and abort the TCP connection ``CLOSE_FRAME_SECONDS`` later.

        The peer is too slow or gone: the close frame may sit behind bytes it never reads (the writer
        may even be stuck in a send), so the abort does not wait for the closing handshake.
        """
        self._begin_closing(close)
        self._held = None
        self._outbox.clear()
        self._outbox.append(None)
        self._wake()
        asyncio.get_running_loop().call_later(CLOSE_FRAME_SECONDS, self._abort_transport)

    def _begin_closing(self, close: CloseCode) -> None:
        if self.state is ConnectionState.OPEN:
            self.state = ConnectionState.CLOSING
            self.close_code, self._close_reason = close.code, close.reason

    def _wake(self) -> None:
        """Resume the writer if it is waiting for frames; it then sends everything queued before waiting again."""
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            if not wakeup.done():
                wakeup.set_result(None)

    async def _write_forever(self) -> None:
        outbox, send = self._outbox, self._send
        while True:
            if not outbox:
                self._wakeup = asyncio.get_running_loop().create_future()
                await self._wakeup
                continue
            text = outbox.popleft()
            if text is None:
                break
            try:
                await send({"type": "websocket.send", "text": text})
            except (OSError, RuntimeError, WebSocketDisconnect):
                # The peer is gone (uvicorn raises ClientDisconnected, an OSError) or uvicorn already sent a
                # close (keep-alive timeout, protocol error: RuntimeError): the receive loop ends the socket.
                return
        assert self.close_code is not None
        with contextlib.suppress(Exception):  # the peer may already be gone; the receive loop sees that
            await self.websocket.close(self.close_code, self._close_reason)

    def _abort_transport(self) -> None:
        if self._abort is not None:
            self._abort()
