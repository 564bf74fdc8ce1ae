"""The ceiling: the least a Python broadcast server can do, written on ``websockets`` with ``broadcast()``.

``python -m bench.ceiling_server --port P --frame-bytes B`` speaks just enough of the chat protocol
for the fan-out load: it accepts any ``/ws/chat`` socket, sends ``{"event":"ready","data":true}``, and
for every text frame it receives it broadcasts one fixed JSON frame of ``B`` bytes, shaped like the
chat server's ``newMessage``, to every socket. No parsing, no storage, no per-socket queue or task:
``websockets.broadcast()`` encodes once and writes each socket's frame synchronously. Whatever the
chat server does beyond that is its own cost, which is what the ratio ours/ceiling measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve

READY = json.dumps({"event": "ready", "data": True}, separators=(",", ":"))


def broadcast_frame(size: int) -> str:
    """A ``newMessage`` frame like the chat server's, its content padded to ``size`` bytes in all."""
    frame: dict[str, Any] = {
        "chat": "global",
        "event": "newMessage",
        "message": {
            "_id": "6b0725c5f6aeba8add02335b",
            "sender": {"_id": "be0000000000000000000000", "name": "bench-0", "avatar": None},
            "content": "",
            "type": "global",
            "reactions": [],
            "createdAt": "2026-11-25T18:15:33.925Z",
        },
    }
    bare = len(json.dumps(frame, separators=(",", ":")))
    frame["message"]["content"] = "x" * max(size - bare, 1)
    return json.dumps(frame, separators=(",", ":"))


async def serve_forever(host: str, port: int, frame: str) -> None:
    clients: set[ServerConnection] = set()

    async def handler(connection: ServerConnection) -> None:
        await connection.send(READY)
        clients.add(connection)
        try:
            async for _ in connection:
                broadcast(clients, frame)
        finally:
            clients.discard(connection)

    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(handler, host, port, compression=None, max_queue=None, backlog=2048):
        await stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--frame-bytes", type=int, default=300)
    args = parser.parse_args()
    runner: Any = asyncio.run
    try:
        import uvloop  # the chat server runs on uvloop too (uvicorn's "auto" loop), so the comparison is fair

        runner = uvloop.run
    except ImportError:
        pass
    runner(serve_forever(args.host, args.port, broadcast_frame(args.frame_bytes)))


if __name__ == "__main__":
    main()
