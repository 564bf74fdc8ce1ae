"""Running the app: uvicorn's server with the chat's drain added at the front of its shutdown.

On SIGTERM uvicorn would close every WebSocket at once, dropping frames still queued for them. Here
the worker first drains (``Services.drain``): ``/readyz`` turns 503, new sockets are refused, every
socket gets its queued frames and then close code 1012 (service restart) so clients reconnect to
another replica; only then does uvicorn's own shutdown run. All of it fits in ``CHAT_DRAIN_SECONDS``.
"""

from __future__ import annotations

import errno
import functools
import logging
import socket
import sys

import uvicorn

from chatserver import collector
from chatserver.entry import Entry
from chatserver.logs import logging_config
from chatserver.request_head import BoundedHttpToolsProtocol, HeadLimits, PendingHeads
from chatserver.services import Services
from chatserver.settings import Settings

log = logging.getLogger(__name__)

_UVICORN_SHUTDOWN_SECONDS = 1.0
STARTUP_FAILED = 3  # uvicorn's own exit status when the app does not start


class ListenError(Exception):
    """The address cannot be listened on (in use, not resolvable, not permitted)."""


def listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket before anything starts, so a taken port is one clear line, not a log."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        reason = "address already in use" if error.errno == errno.EADDRINUSE else error.strerror or str(error)
        raise ListenError(f"cannot listen on {host}:{port}: {reason}") from None
    listening.set_inheritable(True)  # the workers of a multi-process run share it
    return listening


class ChatServer(uvicorn.Server):
    """uvicorn's server that drains ``services`` (the app's, handed over) before its own shutdown."""

    def __init__(self, config: uvicorn.Config, services: Services, drain_seconds: float) -> None:
        super().__init__(config)
        self._services = services
        self._drain_seconds = drain_seconds

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        collector.time_passes()
        await super().startup(sockets)
        if self.started:
            collector.freeze_startup()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.started:
            await self._services.drain(self._drain_seconds - _UVICORN_SHUTDOWN_SECONDS)
        await super().shutdown(sockets)


def uvicorn_config(
    app: object, settings: Settings, *, host: str, port: int, workers: int, log_level: str, replica: str
) -> uvicorn.Config:
    """The one place the uvicorn options are chosen (see README: why websockets-sansio, why a bounded head)."""
    limits = HeadLimits(settings.head_max_bytes, settings.head_timeout_seconds, settings.max_pending_heads)
    bounded_http = functools.partial(BoundedHttpToolsProtocol, limits=limits, pending=PendingHeads())
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        factory=isinstance(app, str),
        host=host,
        port=port,
        workers=workers,
        http=bounded_http,  # type: ignore[arg-type]
        ws="websockets-sansio",
        ws_max_size=settings.transport_max_bytes,
        ws_per_message_deflate=False,  # per-socket zlib state and per-socket compression; see README: Performance
        ws_ping_interval=settings.ping_interval_seconds,
        ws_ping_timeout=settings.ping_timeout_seconds,
        timeout_graceful_shutdown=int(_UVICORN_SHUTDOWN_SECONDS),
        log_config=logging_config(log_level, replica),
        log_level=log_level,
        access_log=False,
        lifespan="on",
    )


def serve(
    app: Entry | str,
    settings: Settings,
    listening: socket.socket,
    *,
    host: str,
    port: int,
    workers: int,
    log_level: str,
    replica: str,
) -> None:
    """Serve on ``listening`` until SIGTERM/SIGINT.

    ``app`` is ``create_app``'s, served and drained here, or an import string of a factory for
    ``workers`` processes that share ``listening`` through uvicorn's supervisor.
    """
    config = uvicorn_config(app, settings, host=host, port=port, workers=workers, log_level=log_level, replica=replica)
    log.info("listening on http://%s:%d with %d worker(s)", host, port, workers)
    if isinstance(app, str):
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[listening]).run()
        return
    config.load()
    server = ChatServer(config, app.services, settings.drain_seconds)
    server.run(sockets=[listening])
    if not server.started:
        sys.exit(STARTUP_FAILED)  # the reason is the ERROR line just logged
