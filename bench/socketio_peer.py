"""The peer: the chat as a Python team would write it without us, on python-socketio.

``python -m bench.socketio_peer --port P [--redis-url URL]`` serves Socket.IO at ``/socket.io/``
(``socketio.AsyncServer`` in ASGI mode on uvicorn, with the chat server's uvicorn options:
``websockets-sansio``, uvloop, no compression). On connect it checks the same JWT as ours (the
token in the CONNECT packet's ``auth`` or the ``token`` query parameter) and joins the global room
and the player's clan room; a ``globalMessage`` or ``clanMessage`` event is emitted to that room as
``newMessage`` with the fields of our broadcast frame. With ``--redis-url`` the replicas share
rooms through python-socketio's own ``AsyncRedisManager``. Nothing is stored: whatever ours pays
for its store, its checks and its ordering is on our side of the ratio ours/peer.
"""

from __future__ import annotations

import argparse
import os
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import jwt
import socketio
import uvicorn
from socketio import exceptions

GLOBAL_ROOM = "global"
MAX_CONTENT = 256
# Engine.IO's ping waits in a socket's queue behind the events already queued for it, and a socket
# whose pong is not back within ``ping_timeout`` (20 s by default) is dropped as gone. A flood that
# keeps the server busy for longer (thousands of sockets on a shared core) would then cut sockets
# instead of measuring throughput, so the benchmark allows longer than any of its floods. uvicorn's
# own WebSocket keep-alive is off for the same reason (its pong waits behind every ready task):
# Engine.IO's heartbeat is the one a Socket.IO server relies on.
PING_TIMEOUT_SECONDS = 300


def player_of(token: str | None, secret: str) -> dict[str, Any] | None:
    """The token's claims when it is ours and valid (signature, expiry, a player id), else None."""
    if not token:
        return None
    try:
        claims: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS256"])
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims.get("player_id"), str) else None


def iso_millis(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_app(secret: str, redis_url: str | None) -> socketio.ASGIApp:
    manager = socketio.AsyncRedisManager(redis_url) if redis_url else None
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager, ping_timeout=PING_TIMEOUT_SECONDS)

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: dict[str, Any] | None) -> bool:
        token = (auth or {}).get("token") or parse_qs(environ.get("QUERY_STRING", "")).get("token", [None])[0]
        claims = player_of(token, secret)
        if claims is None:
            raise exceptions.ConnectionRefusedError("AUTHENTICATION_FAILED")
        await sio.save_session(sid, claims)
        await sio.enter_room(sid, GLOBAL_ROOM)
        if claims.get("clan_id"):
            await sio.enter_room(sid, f"clan:{claims['clan_id']}")
        return True

    async def post(sid: str, data: Any, chat: str) -> None:
        content = data.get("content", "").strip() if isinstance(data, dict) else ""
        if not isinstance(content, str) or not content or len(content) > MAX_CONTENT:
            await sio.emit("error", {"reason": "NOT_VALID", "field": "content"}, to=sid)
            return
        player = await sio.get_session(sid)
        clan_id = player.get("clan_id")
        if chat == "clan" and not clan_id:
            await sio.emit("error", {"reason": "NOT_IN_CLAN", "field": "clan_id"}, to=sid)
            return
        now = iso_millis(datetime.now(UTC))
        message: dict[str, Any] = {"_id": secrets.token_hex(12)}
        if chat == "clan":
            message["clan_id"] = clan_id
        message |= {
            "sender": {"_id": player["player_id"], "name": player.get("name"), "avatar": None},
            "content": content,
            "type": chat,
            "reactions": [],
            "createdAt": now,
            "updatedAt": now,
        }
        room = GLOBAL_ROOM if chat == "global" else f"clan:{clan_id}"
        await sio.emit("newMessage", {"chat": chat, "message": message}, room=room)

    @sio.on("globalMessage")
    async def global_message(sid: str, data: Any) -> None:
        await post(sid, data, "global")

    @sio.on("clanMessage")
    async def clan_message(sid: str, data: Any) -> None:
        await post(sid, data, "clan")

    return socketio.ASGIApp(sio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", help="share rooms between replicas through this Redis")
    args = parser.parse_args()
    uvicorn.run(
        build_app(os.environ["JWT_SECRET"], args.redis_url),
        host=args.host,
        port=args.port,
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
