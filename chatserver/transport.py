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

from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.protocol import State
from websockets.server import ServerProtocol

TRANSPORT_KEY = "chatserver.transport"
SEND_KEY = "chatserver.send"


class TransportAccess:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            transport: Any = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None and hasattr(transport, "abort"):
                scope[TRANSPORT_KEY] = transport
                scope[SEND_KEY] = send
        await self.app(scope, receive, send)


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


def direct_writer_of(scope: Scope) -> Callable[[bytes], bool] | None:
    """A function that writes a ``text_frame`` to the socket now, if nothing can be out of order or refused.

    It writes only while the WebSocket is open and uvicorn's own ``send`` would not wait (the
    transport is below its high-water mark), and says whether it did; the caller makes sure nothing
    of its own is queued or half sent. uvicorn writes its pings, pongs and close frames to the same
    transport synchronously, so whole frames never interleave. None when the server is not uvicorn's
    ``websockets-sansio`` or the peer negotiated an extension (compression): then every frame goes
    through ``send``.
    """
    protocol: Any = getattr(scope.get(SEND_KEY), "__self__", None)
    conn = getattr(protocol, "conn", None)
    writable = getattr(protocol, "writable", None)
    if not isinstance(conn, ServerProtocol) or not isinstance(writable, asyncio.Event) or conn.extensions:
        return None
    transport = scope[TRANSPORT_KEY]

    def write_now(frame: bytes) -> bool:
        if conn.state is not State.OPEN or not writable.is_set() or transport.is_closing():
            return False
        transport.write(frame)
        return True

    return write_now


def limit_send_buffer(scope: Scope, size: int | None) -> None:
    """Cap the kernel's send buffer of this socket, which bounds what a stuck reader can hold."""
    transport = scope.get(TRANSPORT_KEY)
    sock = None if transport is None or size is None else transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
