"""Reach the TCP transport under a WebSocket, for what ASGI cannot do: bound and abort a socket.

A client that stops reading keeps its TCP window at zero; a close frame then waits forever behind the
unsent bytes and so does the socket, and on loopback the kernel would buffer megabytes for it first.
``TransportAccess`` is the outermost ASGI layer: it sees uvicorn's own ``send`` (a method of the
connection's protocol object, which holds the asyncio transport) before Starlette wraps it, and
leaves the transport in the scope. Under another server the key is simply absent: connections then
fall back to a plain close and the kernel's default buffer.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

TRANSPORT_KEY = "chatserver.transport"


class TransportAccess:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            transport: Any = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None and hasattr(transport, "abort"):
                scope[TRANSPORT_KEY] = transport
        await self.app(scope, receive, send)


def abort_of(scope: Scope) -> Callable[[], None] | None:
    """A function that drops the connection at once, if the server let us find its transport."""
    transport = scope.get(TRANSPORT_KEY)
    return None if transport is None else transport.abort


def limit_send_buffer(scope: Scope, size: int | None) -> None:
    """Cap the kernel's send buffer of this socket, which bounds what a stuck reader can hold."""
    transport = scope.get(TRANSPORT_KEY)
    sock = None if transport is None or size is None else transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
