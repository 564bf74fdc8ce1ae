"""The ``/ws/chat`` endpoint: pick the dialect and authenticate during the handshake, join rooms, read frames.

Thin on purpose: each frame goes to the ``Receiver``; a refused handshake is an HTTP answer with the
protocol's error body, never an accepted socket closed at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from chatserver import metrics
from chatserver.auth import token_from_request
from chatserver.connection import Connection
from chatserver.players import Player, identify
from chatserver.protocol.errors import ChatError
from chatserver.protocol.vocabulary import CloseCode, Dialect, ErrorReason
from chatserver.receive import Receiver
from chatserver.resume import missed_changes, since_from_request
from chatserver.services import Services
from chatserver.transport import abort_of, forget_handshake, limit_send_buffer

log = logging.getLogger(__name__)

RESTARTING = "This server is restarting; connect again to reach another one"
BEHIND = "This server is too busy to take new connections; try again shortly"


@dataclass(frozen=True, slots=True)
class Admission:
    """What the handshake settled, and all a socket keeps of it: the request itself is not kept."""

    dialect: Dialect
    subprotocol: str | None
    player: Player
    expires_at: float | None
    since: datetime | None


async def chat_socket(websocket: WebSocket, services: Services) -> None:
    try:
        admitted = await _admit(HTTPConnection(websocket.scope), services)
    except ChatError as error:
        await _deny(websocket, error)
        return

    limit_send_buffer(websocket.scope, services.settings.socket_send_buffer_bytes)
    await websocket.accept(subprotocol=admitted.subprotocol)
    forget_handshake(websocket.scope)
    player = admitted.player
    if services.hub.connection_count >= services.settings.max_sockets:
        log.warning("refusing a socket: this worker holds CHAT_MAX_SOCKETS", extra={"player_id": player.id})
        # 1013: the client backs off and tries again, maybe elsewhere
        await websocket.close(CloseCode.OVERLOADED.code, CloseCode.OVERLOADED.reason)
        return
    connection = Connection(
        websocket, player, services.settings.outbound_queue_frames, abort_of(websocket.scope), admitted.dialect
    )
    connection.hold()  # live frames wait until ``ready`` (and any replay) is queued: nothing before it, none lost
    await services.hub.attach(connection)
    try:
        connection.start()
        await _send_ready(connection, admitted.since, services)
        # A wiki client signs in again after 4401 and reconnects; the shipped game client never
        # reconnects, and its player proved who they are when the socket opened (a clan change
        # still moves the socket, through membership), so a game socket outlives its token.
        if admitted.expires_at is not None and connection.dialect is not Dialect.GAME:
            services.expiries.add(connection, admitted.expires_at)
        log.info("connection opened", extra={"player_id": player.id, "connection": connection.id})
        await _read_frames(websocket, Receiver(connection, services))
    finally:
        services.expiries.discard(connection)
        await services.hub.detach(connection)
        await connection.stop()
        log.info(
            "connection closed",
            extra={"player_id": player.id, "connection": connection.id, "code": connection.close_code},
        )


async def _admit(request: HTTPConnection, services: Services) -> Admission:
    """Check the handshake: admission, dialect, token, player, resume point and the connect rate.

    ``request`` is a throw-away view of the scope, so the headers and query it parses are not kept
    for the socket's life (an idle socket's bytes: bench/README.md, "connections").
    """
    _check_admission(request, services)
    dialect, subprotocol = _dialect_of(request, services.settings.dialect)
    if dialect is not Dialect.GAME:  # the shipped game client never retries: it waits rather than go without chat
        _check_lag(services)
    token = token_from_request(request.headers, request.query_params)
    identity, player = await identify(token, services.settings, services.players)
    since = since_from_request(request.headers, request.query_params)
    await services.chat.charge_connect(player)
    return Admission(dialect, subprotocol, player, identity.expires_at, since)


async def _send_ready(connection: Connection, since: datetime | None, services: Services) -> None:
    """Queue ``ready`` (after the replay, when resuming), then the live frames held meanwhile."""
    if since is None:
        _release(connection, [], connection.frames.ready(None))
        return
    replay = await missed_changes(connection.player, since, services.chat, services.settings)
    texts = [text for text in map(connection.frames.broadcast, replay.texts) if text is not None]
    _release(connection, texts, connection.frames.ready(replay.recovered), replay.already_sent)


def _release(
    connection: Connection, replay: list[str], ready: str | None, skip: Callable[[str], bool] | None = None
) -> None:
    """Queue the replay and ``ready`` (a game socket gets no ``ready``), then the live frames held meanwhile."""
    if ready is None:
        metrics.FRAMES_WITHHELD.labels("ready").inc()
    connection.release([*replay, *([ready] if ready is not None else [])], skip=skip)


def _check_lag(services: Services) -> None:
    """Refuse at once while the event loop runs far behind (``looplag``): a client that backs off costs less."""
    max_lag = services.settings.admission_max_lag_ms
    if max_lag and services.loop_lag.seconds * 1000 > max_lag:
        metrics.SOCKETS_REFUSED_BEHIND.inc()
        raise ChatError.of(ErrorReason.NOT_AVAILABLE, None, BEHIND)


def _check_admission(request: HTTPConnection, services: Services) -> None:
    """Refuse while draining, and browsers from origins the operator did not allow (game clients send none)."""
    if services.draining:
        raise ChatError.of(ErrorReason.NOT_AVAILABLE, None, RESTARTING)
    origin = request.headers.get("origin")
    allowed = services.settings.allowed_origins
    if allowed and origin is not None and origin not in allowed:
        raise ChatError.of(ErrorReason.NOT_AUTHORIZED, "origin", "This origin may not connect", origin[:128])


def _dialect_of(request: HTTPConnection, default: Dialect) -> tuple[Dialect, str | None]:
    """The first dialect the client names in ``Sec-WebSocket-Protocol`` (echoed back), else ``default``."""
    offered: list[str] = request.scope.get("subprotocols") or []
    if not offered:
        return default, None
    for token in offered:
        dialect = Dialect.of_subprotocol(token)
        if dialect is not None:
            return dialect, token
    known = [dialect.subprotocol for dialect in Dialect]
    raise ChatError.of(
        ErrorReason.WRONG_ENUM,
        "Sec-WebSocket-Protocol",
        f"Sec-WebSocket-Protocol must name one of {', '.join(known)}",
        ", ".join(offered)[:64],
        {"allowed": known},
    )


async def _read_frames(websocket: WebSocket, receiver: Receiver) -> None:
    while True:
        try:
            message = await websocket.receive()
        except WebSocketDisconnect:
            return
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None:
            await receiver.text(text)
        else:
            await receiver.binary(message.get("bytes") or b"")


async def _deny(websocket: WebSocket, error: ChatError) -> None:
    """Refuse the handshake with an HTTP status and the protocol's error body; never accept-then-close."""
    metrics.ERRORS.labels(error.reason_label).inc()
    log.info("connection refused", extra={"reason": error.reason_label, "status": error.status_code})
    body = error.frame_text().encode()
    await websocket.send_denial_response(Response(body, status_code=error.status_code, media_type="application/json"))
