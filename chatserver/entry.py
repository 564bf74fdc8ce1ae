"""The outermost ASGI layer: chat sockets go straight to their endpoint, everything else to the app.

A chat socket is idle most of its life, and every ASGI layer it passes through stays on its stack
as a suspended coroutine for as long as it is open: Starlette's error and exception middleware,
the router, the route and its exception wrappers cost several kilobytes a socket and a call each
per handshake (bench/README.md, "connections"). None of them does anything for a WebSocket that
the endpoint does not do itself (it answers every refusal in the protocol's shape), so
``/ws/chat`` is matched here, once, and every other scope goes on to the lifespan and Starlette.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from chatserver import transport
from chatserver.services import Services
from chatserver.ws import chat_socket

SOCKET_PATH = "/ws/chat"


class Entry:
    """Serves ``/ws/chat`` (also under ``root_path``) itself; passes every other scope to ``app``."""

    def __init__(self, app: ASGIApp, services: Services, root_path: str = "") -> None:
        self.app = app
        self.services = services
        self.socket_paths = frozenset({SOCKET_PATH, f"{root_path}{SOCKET_PATH}"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            transport.capture(scope, send)
            if scope["path"] in self.socket_paths:
                await chat_socket(WebSocket(scope, receive, send), self.services)
                return
        await self.app(scope, receive, send)
