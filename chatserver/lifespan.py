"""The ASGI lifespan: start the worker's services before the first request, stop them after the last.

Written out instead of Starlette's ``lifespan=`` so that a backend that cannot be reached at start-up
(``StartupFailed``) ends the worker with one clear log line instead of a traceback.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from chatserver.services import Services, StartupFailed


class Lifespan:
    """Answers ``lifespan`` scopes with the services' ``start``/``stop``; passes every other scope to ``app``."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        await receive()  # lifespan.startup
        try:
            await self.services.start()
        except StartupFailed as failed:
            await send({"type": "lifespan.startup.failed", "message": str(failed)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await self.services.stop()
        await send({"type": "lifespan.shutdown.complete"})
