"""Reach the TCP transport under a WebSocket, for what ASGI cannot do: bound, abort and write a socket directly.

Why and how: docs/architecture.md, "The send path and the transport".
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any

from starlette.types import Scope, Send
from websockets.protocol import State
from websockets.server import ServerProtocol

_OPEN = State.OPEN  # looked up once: ``RawSocket.write`` runs once per socket per broadcast
TRANSPORT_KEY = "chatserver.transport"
SEND_KEY = "chatserver.send"


def capture(scope: Scope, send: Send) -> None:
    """Keep the server's transport and its own ``send`` in a WebSocket's scope, if the server lets us find them.

    Call it with the server's ``send``, before any middleware wraps it: it is a method of the
    connection's protocol object, which holds the asyncio transport.
    """
    transport: Any = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        scope[TRANSPORT_KEY] = transport
        scope[SEND_KEY] = send


def abort_of(scope: Scope) -> Callable[[], None] | None:
    """A function that drops the connection at once, if the server let us find its transport."""
    transport = scope.get(TRANSPORT_KEY)
    return None if transport is None else transport.abort


def send_of(scope: Scope) -> Send | None:
    """The server's own ASGI ``send``, before any middleware wraps it, if the server let us find its transport."""
    send: Send | None = scope.get(SEND_KEY)
    return send


def text_frame(text: str) -> bytes:
    """``text`` as one final, unmasked, uncompressed WebSocket text frame: the bytes a server writes."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


class RawSocket:
    """Writes ``text_frame`` bytes straight to an open socket's transport, beside uvicorn's own writes.

    It writes only while the WebSocket is open and uvicorn's own ``send`` would not wait (the
    transport is below its high-water mark); the connection makes sure nothing of its own is queued
    or half sent. uvicorn writes its pings, pongs and close frames to the same transport
    synchronously, so whole frames never interleave.
    """

    __slots__ = ("_conn", "_writable", "_transport")

    def __init__(self, conn: ServerProtocol, writable: asyncio.Event, transport: asyncio.Transport) -> None:
        self._conn = conn
        self._writable = writable
        self._transport = transport

    @property
    def open(self) -> bool:
        return self._conn.state is State.OPEN and not self._transport.is_closing()

    def write(self, data: bytes) -> bool:
        """Write ``data`` (whole frames) now if the socket takes it without waiting; say whether it did."""
        transport = self._transport
        if self._conn.state is not _OPEN or not self._writable.is_set() or transport.is_closing():
            return False
        transport.write(data)
        return True

    async def writable(self) -> None:
        """Wait until the transport is below its high-water mark again (the peer read what it had)."""
        await self._writable.wait()


def raw_socket_of(scope: Scope) -> RawSocket | None:
    """The socket's ``RawSocket``, or None when the server is not uvicorn's ``websockets-sansio`` or the
    peer negotiated an extension (compression): then every frame goes through ``send``."""
    protocol: Any = getattr(scope.get(SEND_KEY), "__self__", None)
    conn = getattr(protocol, "conn", None)
    writable = getattr(protocol, "writable", None)
    if not isinstance(conn, ServerProtocol) or not isinstance(writable, asyncio.Event) or conn.extensions:
        return None
    return RawSocket(conn, writable, scope[TRANSPORT_KEY])


def forget_handshake(scope: Scope) -> None:
    """Drop what only the handshake needed: the scope's request headers, and the request and response
    that uvicorn's ``websockets-sansio`` protocol keeps.

    Both are kept (with their headers, 3-4 KiB) for the socket's whole life but read only until the
    accept is sent, so an idle socket need not carry them (bench/README.md, "connections"). The
    endpoint reads every header it needs before accepting.
    """
    scope["headers"] = []
    protocol: Any = getattr(scope.get(SEND_KEY), "__self__", None)
    if isinstance(getattr(protocol, "conn", None), ServerProtocol) and protocol.handshake_complete:
        protocol.request = protocol.response = None


def limit_send_buffer(scope: Scope, size: int | None) -> None:
    """Cap the kernel's send buffer of this socket, which bounds what a stuck reader can hold."""
    transport = scope.get(TRANSPORT_KEY)
    sock = None if transport is None or size is None else transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
