"""A raw asyncio WebSocket client that costs much less than the server it measures.

The load generator must not be the bottleneck, so it skips everything a real client library does:
it writes the HTTP upgrade itself, never checks ``Sec-WebSocket-Accept``, masks its frames with an
all-zero key (legal, and XOR with zero is a no-op, so no per-byte work), and reads server frames by
their 2-10 byte headers only. Counting needs no JSON decoding and no per-frame Python call: one
``data_received`` adds up every complete frame in the chunk and reports the count once. Only a
listener that asks for payloads (the latency scenario) gets a call per frame.

Pings are answered with pongs, so idle sockets survive the server's keep-alive; a close frame or a
lost connection is reported to the listener, which is how a benchmark notices a slow-consumer cut.

A Socket.IO socket (``engine_io``, for the python-socketio peer) speaks Engine.IO 4 over the same
frames: it answers the open packet ``0{...}`` with the namespace connect ``40``, is ready at the
server's ``40{...}``, answers the Engine.IO ping ``2`` with ``3``, and counts only event frames
(``42[...]``), recognised by their first two bytes, so counting stays as cheap as for ours.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, cast

ZERO_MASK = b"\x00\x00\x00\x00"
_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample key; the answer is not checked
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
ENGINE_IO_EVENT = b"42"  # an Engine.IO message (4) holding a Socket.IO event (2)
ENGINE_IO_PATH = "/socket.io/?EIO=4&transport=websocket"


class SocketState(Enum):
    CONNECTING = "connecting"
    HANDSHAKING = "handshaking"
    WAITING_READY = "waiting_ready"
    OPEN = "open"
    CLOSED = "closed"


class Listener(Protocol):
    """What a benchmark does with the frames of its sockets."""

    wants_payloads: bool

    def on_frames(self, socket: RawSocket, count: int) -> None:
        """``count`` complete data frames arrived on ``socket`` (after its first, ready, frame)."""

    def on_text(self, socket: RawSocket, data: bytes, start: int, stop: int, now_ns: int) -> None:
        """One data frame's payload is ``data[start:stop]``; only called when ``wants_payloads``."""

    def on_closed(self, socket: RawSocket, reason: str) -> None:
        """The server closed the socket or the connection was lost."""


class CountingListener:
    """Counts every data frame of every socket; the fan-out and fill scenarios need nothing more."""

    wants_payloads = False

    def __init__(self) -> None:
        self.frames = 0
        self.closed: list[str] = []

    def on_frames(self, socket: RawSocket, count: int) -> None:
        self.frames += count

    def on_text(self, socket: RawSocket, data: bytes, start: int, stop: int, now_ns: int) -> None:
        self.frames += 1

    def on_closed(self, socket: RawSocket, reason: str) -> None:
        self.closed.append(reason)


GAME_SUBPROTOCOL = "altzone-chat.game"


def run_load(main: Coroutine[Any, Any, None]) -> None:
    """Run a load process's ``main`` on uvloop when it is installed (as the servers run), else on asyncio."""
    try:
        import uvloop

        uvloop.run(main)
    except ImportError:
        asyncio.run(main)


def upgrade_request(host: str, port: int, path: str, subprotocol: str | None = None) -> bytes:
    """The HTTP/1.1 upgrade request, written once per socket; a game-dialect socket names its subprotocol."""
    offered = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {_KEY}\r\nSec-WebSocket-Version: 13\r\n{offered}\r\n"
    ).encode("ascii")


def client_frame(payload: bytes, opcode: int = OPCODE_TEXT) -> bytes:
    """A final client frame with the zero mask: the payload goes out unchanged."""
    size = len(payload)
    first = 0x80 | opcode
    if size < 126:
        head = bytes((first, 0x80 | size))
    elif size < 65536:
        head = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + ZERO_MASK + payload


class RawSocket(asyncio.Protocol):
    """One client WebSocket; the first data frame is the server's ``ready``, every later one is load.

    A game-dialect socket (``expects_ready`` false) gets no ``ready``: it is open once the handshake is.
    An ``engine_io`` socket is ready at the Socket.IO namespace connect instead (see the module).
    """

    def __init__(
        self, request: bytes, listener: Listener, index: int, expects_ready: bool = True, engine_io: bool = False
    ) -> None:
        self.index = index
        self._expects_ready = expects_ready
        self.engine_io = engine_io
        self.state = SocketState.CONNECTING
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.last_payload_bytes = 0
        self._request = request
        self._listener = listener
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self.state = SocketState.HANDSHAKING
        self.transport.write(self._request)

    def send_text(self, payload: bytes) -> None:
        if self.transport is not None and self.state is not SocketState.CLOSED:
            self.transport.write(client_frame(payload))

    def write(self, frames: bytes) -> None:
        """Write frames already built with ``client_frame`` (a burst in one system call)."""
        if self.transport is not None and self.state is not SocketState.CLOSED:
            self.transport.write(frames)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state is not SocketState.CLOSED:
            self._closed(f"connection lost: {exc}" if exc else "connection lost")

    def data_received(self, data: bytes) -> None:
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        if self.state is SocketState.HANDSHAKING:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._buffer = data
                return
            status = data[: data.find(b"\r\n")]
            if b" 101 " not in status:
                self._closed(f"handshake refused: {status.decode('latin-1')}")
                self.close()
                return
            self.state = SocketState.WAITING_READY
            data = data[end + 4 :]
            if not self._expects_ready:
                self.state = SocketState.OPEN
                self.ready.set_result(None)
        self._frames(data)

    def _frames(self, data: bytes) -> None:
        pos, end, count = 0, len(data), 0
        payloads = self._listener.wants_payloads
        engine_io = self.engine_io
        now_ns = time.monotonic_ns() if payloads else 0
        while end - pos >= 2:
            size = data[pos + 1] & 0x7F
            head = 2
            if size == 126:
                if end - pos < 4:
                    break
                size = (data[pos + 2] << 8) | data[pos + 3]
                head = 4
            elif size == 127:
                if end - pos < 10:
                    break
                size = int.from_bytes(data[pos + 2 : pos + 10], "big")
                head = 10
            stop = pos + head + size
            if stop > end:
                break
            opcode = data[pos] & 0x0F
            if opcode == OPCODE_TEXT or opcode == OPCODE_BINARY:
                if engine_io and not data.startswith(ENGINE_IO_EVENT, pos + head):
                    if not self._engine_packet(data[pos + head : stop]):
                        return
                elif self.state is SocketState.OPEN:
                    if payloads:
                        self._listener.on_text(self, data, pos + head, stop, now_ns)
                    else:
                        count += 1
                elif not engine_io:  # ours' first frame is ``ready``
                    self._opened()
                self.last_payload_bytes = size
            elif opcode == OPCODE_PING:
                self.write(client_frame(data[pos + head : stop], 0xA))
            elif opcode == OPCODE_CLOSE:
                code = int.from_bytes(data[pos + head : pos + head + 2], "big") if size >= 2 else 1005
                self._closed(f"closed by server: {code} {data[pos + head + 2 : stop].decode(errors='replace')}")
                self.close()
                return
            pos = stop
        if pos < end:
            self._buffer = data[pos:]
        if count:
            self._listener.on_frames(self, count)

    def _engine_packet(self, packet: bytes) -> bool:
        """One Engine.IO packet other than an event; false when it ended the socket."""
        if packet == b"2":
            self.write(client_frame(b"3"))
        elif packet.startswith(b"0"):
            self.write(client_frame(b"40"))
        elif packet.startswith(b"40"):
            self._opened()
        elif packet.startswith((b"1", b"41", b"44")):  # close, namespace disconnect, connect refused
            self._closed(f"closed by server: {packet.decode(errors='replace')}")
            self.close()
            return False
        return True

    def _opened(self) -> None:
        self.state = SocketState.OPEN
        if not self.ready.done():
            self.ready.set_result(None)

    def _closed(self, reason: str) -> None:
        self.state = SocketState.CLOSED
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
            self.ready.exception()  # retrieved here, so an unawaited failure is never logged as lost
        self._listener.on_closed(self, reason)


@dataclass
class OpenResult:
    """What opening a batch of sockets cost: seconds for the batch and each socket's connect-to-ready time."""

    sockets: list[RawSocket]
    seconds: float
    connect_seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def open_sockets(
    host: str,
    targets: Sequence[tuple[int, str]],
    listener: Listener,
    *,
    first_index: int = 0,
    concurrency: int = 100,
    timeout: float = 30.0,
    game_every: int = 0,
    engine_io: bool = False,
) -> OpenResult:
    """Connect one socket per ``(port, path)`` and wait for each one's ``ready`` frame.

    With ``game_every`` n, every n-th socket (index 1, 1 + n, ...) asks for the game dialect; with
    ``engine_io`` every socket speaks Socket.IO.

    At most ``concurrency`` handshakes are in flight, which keeps the server's listen backlog from
    overflowing (a dropped SYN costs a one-second retransmit and would wreck the connect rate).
    """
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    result = OpenResult([], 0.0)

    async def one(index: int, port: int, path: str) -> RawSocket | None:
        async with gate:
            started = time.perf_counter()
            game = game_every > 0 and index % game_every == 1 % game_every
            request = upgrade_request(host, port, path, GAME_SUBPROTOCOL if game else None)
            try:
                _, socket = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: RawSocket(request, listener, index, not game, engine_io), host, port
                    ),
                    timeout,
                )
                await asyncio.wait_for(socket.ready, timeout)
            except (OSError, ConnectionError, TimeoutError) as error:
                result.failures.append(f"{type(error).__name__}: {error}")
                return None
            result.connect_seconds.append(time.perf_counter() - started)
            return socket

    started = time.perf_counter()
    opened = await asyncio.gather(*(one(first_index + i, port, path) for i, (port, path) in enumerate(targets)))
    result.seconds = time.perf_counter() - started
    result.sockets = [socket for socket in opened if socket is not None]
    return result
