"""The framework floor: a bare Starlette broadcast loop on uvicorn, with the chat server's uvicorn options.

``python -m bench.starlette_floor --port P --frame-bytes B`` accepts ``/ws/chat``, sends ``ready``, and
for every received text frame awaits ``send_text`` of the same fixed frame as the ceiling server to
every socket, in the receiving task. Starlette + uvicorn (``websockets-sansio``) cost this much
before any chat logic; the chat server's own overhead is what it adds on top. Shown next to the
ceiling so a fan-out ratio can be split into "the framework" and "our code".
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bench.ceiling_server import READY, broadcast_frame


def build_app(frame: str) -> Starlette:
    clients: set[WebSocket] = set()

    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(READY)
        clients.add(websocket)
        try:
            while True:
                await websocket.receive_text()
                for client in list(clients):
                    try:
                        await client.send_text(frame)
                    except (WebSocketDisconnect, RuntimeError):
                        clients.discard(client)
        except WebSocketDisconnect:
            pass
        finally:
            clients.discard(websocket)

    return Starlette(routes=[WebSocketRoute("/ws/chat", chat)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--frame-bytes", type=int, default=300)
    args = parser.parse_args()
    uvicorn.run(
        build_app(broadcast_frame(args.frame_bytes)),
        host=args.host,
        port=args.port,
        ws="websockets-sansio",
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
