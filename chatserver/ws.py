"""The ``/ws/chat`` endpoint: authenticate during the handshake, join rooms, then read frames until close.

Thin on purpose: every frame goes to ``ChatService``; a ``ChatError`` becomes exactly one error
frame and anything unexpected is logged and answered with UNEXPECTED, so no input ends the socket.
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from chatserver import metrics
from chatserver.auth import token_from_request
from chatserver.connection import Connection
from chatserver.errors import ChatError
from chatserver.frames import READY_TEXT, ready_text
from chatserver.players import identify
from chatserver.protocol import ErrorReason
from chatserver.resume import missed_changes, since_from_request
from chatserver.services import Services
from chatserver.transport import abort_of, limit_send_buffer
from chatserver.validation import parse_frame

log = logging.getLogger(__name__)

TOKEN_EXPIRED = (4401, "token expired")
OVERLOADED = (1013, "server overloaded; try again later")
RESTARTING = "This server is restarting; connect again to reach another one"
UNEXPECTED_TEXT = ChatError.of(ErrorReason.UNEXPECTED, None, "Internal server error").frame_text()


async def chat_socket(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    try:
        _check_admission(websocket, services)
        token = token_from_request(websocket.headers, websocket.query_params)
        identity, player = await identify(token, services.settings, services.players)
        since = since_from_request(websocket.headers, websocket.query_params)
    except ChatError as error:
        await _deny(websocket, error)
        return

    limit_send_buffer(websocket.scope, services.settings.socket_send_buffer_bytes)
    await websocket.accept()
    if services.hub.connection_count >= services.settings.max_sockets:
        log.warning("refusing a socket: this worker holds CHAT_MAX_SOCKETS", extra={"player_id": player.id})
        await websocket.close(*OVERLOADED)  # 1013: the client backs off and tries again, maybe elsewhere
        return
    connection = Connection(websocket, player, services.settings.outbound_queue_frames, abort_of(websocket.scope))
    connection.hold()  # live frames wait until ``ready`` (and any replay) is queued: nothing before it, none lost
    await services.hub.attach(connection)
    expiry = None
    try:
        connection.start()
        if since is None:
            connection.release([READY_TEXT])
        else:
            replay = await missed_changes(connection.player, since, services.chat, services.settings.resume_limit)
            connection.release([*replay.texts, ready_text(replay.recovered)], skip=replay.already_sent)
        expiry = _close_at_expiry(connection, identity.expires_at)
        log.info("connection opened", extra={"player_id": player.id, "connection": connection.id})
        await _read_frames(websocket, connection, services)
    finally:
        if expiry is not None:
            expiry.cancel()
        await services.hub.detach(connection)
        await connection.stop()
        log.info(
            "connection closed",
            extra={"player_id": player.id, "connection": connection.id, "code": connection.close_code},
        )


def _check_admission(websocket: WebSocket, services: Services) -> None:
    """Refuse while draining, and browsers from origins the operator did not allow (game clients send none)."""
    if services.draining:
        raise ChatError.of(ErrorReason.NOT_AVAILABLE, None, RESTARTING)
    origin = websocket.headers.get("origin")
    allowed = services.settings.allowed_origins
    if allowed and origin is not None and origin not in allowed:
        raise ChatError.of(ErrorReason.NOT_AUTHORIZED, "origin", "This origin may not connect", origin[:128])


def _close_at_expiry(connection: Connection, expires_at: float | None) -> asyncio.TimerHandle | None:
    """Close with 4401 when the token expires, so the client signs in again and reconnects."""
    if expires_at is None:
        return None
    return asyncio.get_running_loop().call_later(
        max(expires_at - time.time(), 0), lambda: connection.finish(*TOKEN_EXPIRED)
    )


async def _read_frames(websocket: WebSocket, connection: Connection, services: Services) -> None:
    while True:
        try:
            message = await websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            text = (message.get("bytes") or b"").decode("utf-8", "replace")
        await _handle_text(text, connection, services)


async def _handle_text(text: str, connection: Connection, services: Services) -> None:
    """One frame in, exactly one outcome: a broadcast or one error frame; counted by event and reason."""
    ref: str | None = None
    event = "invalid"
    try:
        frame = parse_frame(text, services.settings)
        ref, event = frame.ref, frame.event.value
        metrics.FRAMES_IN.labels(event).inc()
        await services.chat.handle(connection.player, frame)
    except ChatError as error:
        error.ref = error.ref or ref
        metrics.ERRORS.labels(error.reason_label).inc()
        log.info(
            "request refused",
            extra={"player_id": connection.player.id, "event": event, "reason": error.reason_label},
        )
        connection.push(_error_text(error))
    except Exception:
        metrics.ERRORS.labels(ErrorReason.UNEXPECTED.value).inc()
        log.exception("unexpected failure handling a frame", extra={"player_id": connection.player.id})
        unexpected = ChatError.of(ErrorReason.UNEXPECTED, None, "Internal server error")
        unexpected.ref = ref
        connection.push(_error_text(unexpected))


def _error_text(error: ChatError) -> str:
    """The error frame; should an echoed value not encode, the plain UNEXPECTED frame (the socket lives on)."""
    try:
        return error.frame_text()
    except Exception:
        log.exception("an error frame could not be encoded")
        return UNEXPECTED_TEXT


async def _deny(websocket: WebSocket, error: ChatError) -> None:
    """Refuse the handshake with an HTTP status and the protocol's error body; never accept-then-close."""
    metrics.ERRORS.labels(error.reason_label).inc()
    log.info("connection refused", extra={"reason": error.reason_label, "status": error.status_code})
    body = error.frame_text().encode()
    await websocket.send_denial_response(Response(body, status_code=error.status_code, media_type="application/json"))
