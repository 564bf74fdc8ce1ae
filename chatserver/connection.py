"""One accepted socket: who is on it, its dialect, which rooms it is in, and its bounded outbound queue.

Fan-out never waits: frames go straight to an idle socket's transport at the end of the event-loop
iteration, and wait in the socket's bounded backlog (drained by a writer task) only while the peer
reads slower than it is sent to, so one client that stops reading never delays anyone else.
``finish`` sends what waits, then closes; ``cut`` drops it and closes at once (a wiki socket whose
backlog filled up: 1008 "slow consumer").
A game socket's client never reconnects, so a full queue drops its oldest frames instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from enum import Enum

from starlette.websockets import WebSocket, WebSocketDisconnect

from chatserver import metrics
from chatserver.flush import FLUSHER
from chatserver.players import Player
from chatserver.protocol.outbound import RENDERERS, Renderer
from chatserver.protocol.vocabulary import CloseCode, Dialect
from chatserver.transport import raw_socket_of, send_of, text_frame

log = logging.getLogger(__name__)

CLOSE_FRAME_SECONDS = 2.0
REPLAY_FILTER_SECONDS = 60.0
"""How long after a resume live frames are still checked against the replay: a change stored before the
replay was read but published after it arrives live too, as late as its worker is behind."""
_ids = itertools.count(1)


class ConnectionState(Enum):
    OPEN = "open"
    CLOSING = "closing"  # the close frame is on its way; nothing more is sent
    CLOSED = "closed"  # the socket is gone


class Connection:
    """A socket of one player, member of one or more rooms of this worker's hub.

    An idle socket holds no task: frames are gathered during an event-loop iteration and written
    at its end (``flush.FLUSHER``), straight to the transport. Only while the transport is full (or
    the server offers no ``RawSocket``) do frames wait in the backlog, drained by a writer task that
    ends once the backlog is empty.
    """

    __slots__ = (
        "id",
        "websocket",
        "player",
        "dialect",
        "frames",
        "rooms",
        "state",
        "close_code",
        "_abort",
        "_send",
        "_raw",
        "_backlog",
        "_gathered",
        "_limit",
        "_close_reason",
        "_writer",
        "_held",
        "_started",
        "_direct",
        "_skip",
        "_skip_until",
    )

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
        self.rooms: list[str] = []  # the global room and at most one clan's: a list is the smaller
        self.state = ConnectionState.OPEN
        self.close_code: int | None = None
        self._abort = abort
        self._send = send_of(websocket.scope) or websocket.send
        self._raw = raw_socket_of(websocket.scope)
        # Frames for the writer: bytes with a RawSocket, else texts; ``None`` last: send the close frame.
        self._backlog: list[str | bytes | None] = []
        self._gathered: list[bytes] | None = None  # this iteration's frames, written at its end
        self._limit = queue_frames
        self._close_reason = ""
        self._writer: asyncio.Task[None] | None = None
        self._held: list[str] | None = None
        self._started = False
        self._direct = False  # frames may go straight to the transport: see ``_refresh``
        self._skip: Callable[[str], bool] | None = None  # live frames the replay already sent
        self._skip_until = 0.0

    def start(self) -> None:
        """Let frames leave; frames pushed before this wait in the backlog."""
        self._started = True
        if self._backlog:
            self._run_writer()
        self._refresh()

    async def stop(self) -> None:
        """The socket is gone (the receive loop ended): drop what waits and stop the writer."""
        self.state = ConnectionState.CLOSED
        self._direct = False
        self._gathered = None
        self._backlog.clear()
        writer = self._writer
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):  # it ended on its own or was cancelled
                await writer

    def hold(self) -> None:
        """Keep pushed frames aside until ``release``: the socket is joining its rooms (and resuming)."""
        self._held = []
        self._direct = False

    def release(self, first: list[str], skip: Callable[[str], bool] | None = None) -> None:
        """Send ``first`` (``ready``, after any replay), then the held and live frames that ``skip`` does not reject.

        ``first`` is what the server chose to send (a replay is bounded by ``CHAT_RESUME_LIMIT`` a room), so
        the socket's bound grows by its size: a resuming client is not cut for the replay it asked for, and
        the live frames behind it still get the usual room.
        """
        held, self._held = self._held or [], None
        if self.state is not ConnectionState.OPEN:
            return
        self._refresh()
        self._limit += len(first)
        for text in first:
            self.push(text)
        self._skip, self._skip_until = skip, time.monotonic() + REPLAY_FILTER_SECONDS
        for text in held:
            self.push(text)

    def tell(self, kind: str, text: str | None) -> None:
        """Send a frame that is not a broadcast (``ready``, an error, a membership change) if the dialect has one.

        ``kind`` labels the frames a game socket is not sent, so operators see what its players miss.
        """
        if text is None:
            metrics.FRAMES_WITHHELD.labels(kind).inc()
            return
        self.push(text)

    def push(self, text: str, frame: bytes | None = None) -> None:
        """Send a frame without waiting; ``frame``, if given, is ``text`` already serialised (``text_frame``).

        A socket with nothing waiting gathers it for the end of this iteration; otherwise it joins the
        backlog, and a full backlog means the client is too slow (``_overflow``).
        """
        if self._skip is not None and self._replayed(text):
            return
        if self._direct:  # the common case, once per socket per broadcast: as few steps as can be
            gathered = self._gathered
            if gathered is None:
                self._gathered = [frame if frame is not None else text_frame(text)]
                FLUSHER.add(self)
                return
            if len(gathered) < self._limit:
                gathered.append(frame if frame is not None else text_frame(text))
                return
            self.flush()  # a flood within one iteration: write what is gathered now, and gather anew
            self.push(text, frame)
            return
        if self.state is not ConnectionState.OPEN:
            return
        if self._held is not None:
            self._held.append(text)
            if len(self._held) > self._limit:
                self._overflow(self._held)
            return
        if self._raw is None:
            self._enqueue(text)
        else:
            self._enqueue(frame if frame is not None else text_frame(text))

    def _replayed(self, text: str) -> bool:
        """Whether the resume's replay already sent this version; the check ends ``REPLAY_FILTER_SECONDS`` on."""
        if time.monotonic() > self._skip_until:
            self._skip = None
            return False
        return self._skip is not None and self._skip(text)

    def flush(self) -> None:
        """Write this iteration's frames in one go; a full transport sends them to the backlog instead."""
        gathered, self._gathered = self._gathered, None
        if gathered is None or self._raw is None:
            return  # closed or sent to the backlog since they were gathered
        if self._raw.write(gathered[0] if len(gathered) == 1 else b"".join(gathered)):
            return
        if self._raw.open:  # not writable now: the writer waits for the peer to read
            for frame in gathered:
                self._enqueue(frame)
        # else the peer is gone or uvicorn is closing the socket: the receive loop ends it

    def _refresh(self) -> None:
        """Frames go straight out (gathered, then written at the iteration's end) only while nothing waits."""
        self._direct = (
            self.state is ConnectionState.OPEN
            and self._held is None
            and self._raw is not None
            and self._started
            and not self._backlog
            and self._writer is None
        )

    def _spill(self) -> None:
        gathered, self._gathered = self._gathered, None
        if gathered:
            self._backlog.extend(gathered)

    def _enqueue(self, frame: str | bytes) -> None:
        if len(self._backlog) >= self._limit and not self._overflow(self._backlog):
            return
        self._backlog.append(frame)
        self._direct = False
        self._run_writer()

    def _overflow(self, queue: list[str | bytes | None] | list[str]) -> bool:
        """A full queue: a game socket drops its oldest frame (True: there is room now); a wiki socket is cut.

        The game client never reconnects, so a cut would cost its player live chat until the app
        resumes; a gap in a busy room is the smaller loss (history shows the rest). A wiki client
        reconnects with ``since`` and gets everything it missed, so it is cut as before.
        """
        if self.dialect is Dialect.GAME and queue and queue[0] is not None:
            del queue[0]
            metrics.FRAMES_DROPPED.inc()
            return True
        log.warning("cutting slow consumer", extra={"player_id": self.player.id, "connection": self.id})
        metrics.SLOW_CONSUMERS.inc()
        self.cut(CloseCode.SLOW_CONSUMER)
        return False

    def finish(self, close: CloseCode) -> None:
        """Close after every frame sent so far has left (drain, token expiry)."""
        if self.state is not ConnectionState.OPEN:
            return
        self._begin_closing(close)
        self._spill()
        if len(self._backlog) >= self._limit:
            self.cut(close)
            return
        self._backlog.append(None)
        self._run_writer()

    def cut(self, close: CloseCode) -> None:
        """Close now, dropping what waits, and abort the TCP connection ``CLOSE_FRAME_SECONDS`` later.

        The peer is too slow or gone: the close frame may sit behind bytes it never reads (the writer
        may even be stuck waiting for the transport), so the abort does not wait for the closing handshake.
        """
        self._begin_closing(close)
        self._held = None
        self._gathered = None
        self._backlog.clear()
        self._backlog.append(None)
        self._run_writer()
        asyncio.get_running_loop().call_later(CLOSE_FRAME_SECONDS, self._abort_transport)

    def _begin_closing(self, close: CloseCode) -> None:
        self._direct = False
        if self.state is ConnectionState.OPEN:
            self.state = ConnectionState.CLOSING
            self.close_code, self._close_reason = close.code, close.reason

    def _run_writer(self) -> None:
        if self._writer is None and self._started and self.state is not ConnectionState.CLOSED:
            self._writer = asyncio.create_task(self._drain(), name=f"writer-{self.id}")

    async def _drain(self) -> None:
        """Send the backlog, waiting on the peer as needed; end once it is empty or the close frame is sent."""
        backlog = self._backlog
        try:
            while backlog:
                item = backlog[0]
                if item is None:
                    backlog.clear()
                    await self._close()
                    return
                if isinstance(item, str):
                    del backlog[0]
                    await self._send({"type": "websocket.send", "text": item})
                    continue
                assert self._raw is not None
                frames = [frame for frame in backlog if isinstance(frame, bytes)]  # all but a closing ``None``
                if self._raw.write(b"".join(frames)):
                    del backlog[: len(frames)]
                elif self._raw.open:
                    await self._raw.writable()
                else:
                    backlog.clear()  # the peer is gone or uvicorn closed it: the receive loop ends the socket
                    return
        except (OSError, RuntimeError, WebSocketDisconnect):
            # The peer is gone (uvicorn raises ClientDisconnected, an OSError) or uvicorn already sent a
            # close (keep-alive timeout, protocol error: RuntimeError): the receive loop ends the socket.
            backlog.clear()
        finally:
            self._writer = None
            self._refresh()

    async def _close(self) -> None:
        assert self.close_code is not None
        with contextlib.suppress(Exception):  # the peer may already be gone; the receive loop sees that
            await self.websocket.close(self.close_code, self._close_reason)

    def _abort_transport(self) -> None:
        if self._abort is not None:
            self._abort()
