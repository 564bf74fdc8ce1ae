"""Real processes and real sockets for the tests: a ``chatserver`` subprocess on a free port and a WebSocket client.

Nothing of ours is mocked: the server is started the way an operator starts it (``python -m
chatserver``), and clients speak the wire protocol with the ``websockets`` package.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from tools.processes import ManagedProcess, http_ok
from tools.processes import clean_env as clean_env  # tests import these two from here
from tools.processes import free_port as free_port

TEST_SECRET = "test-secret-for-the-chat-server-suite-0123456789-abcdefghijklmnopqrstuvwxyz"
FRAME_TIMEOUT = 5.0
LOG_TIMEOUT = 5.0
# The protocol suite sends bursts a player never would; rate limits are tested on servers of their own.
RATE_LIMITS_OFF = {
    f"CHAT_{kind}_{part}": "1000000"
    for kind in ("MESSAGE", "REACTION", "HISTORY", "CONNECT")
    for part in ("RATE", "BURST")
}
ROOT = Path(__file__).resolve().parents[2]


def suite_env(**extra: str) -> dict[str, str]:
    """Settings every test server starts with (``extra`` wins): the test secret, rate limits off."""
    return {"JWT_SECRET": TEST_SECRET, **RATE_LIMITS_OFF, **extra}


def token(
    player_id: str,
    *,
    name: str | None = None,
    clan_id: str | None = None,
    avatar: dict[str, Any] | None = None,
    secret: str = TEST_SECRET,
    exp_in: float | None = 3600,
    **claims: Any,
) -> str:
    """A token the way the game signs one (HS256, ``player_id``), plus optional profile claims."""
    payload: dict[str, Any] = {"player_id": player_id, "profile_id": f"profile-{player_id}", **claims}
    for key, value in (("name", name), ("clan_id", clan_id), ("avatar", avatar)):
        if value is not None:
            payload[key] = value
    if exp_in is not None:
        payload["exp"] = int(time.time() + exp_in)
    return jwt.encode(payload, secret, algorithm="HS256")


@dataclass
class ServerProcess:
    """One ``chatserver`` process; ``env`` adds to a clean environment with the suite's settings.

    ``suite_settings=False`` leaves those out (no test secret, rate limits on), and ``command`` is how
    it is started (``python -m chatserver`` of this tree unless a test says otherwise).
    """

    env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    suite_settings: bool = True
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "chatserver"])
    child: ManagedProcess | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return None if self.child is None else self.child.popen

    @property
    def log_path(self) -> Path | None:
        return None if self.child is None else self.child.log_path

    def start(self, log_dir: Path) -> ServerProcess:
        env = suite_env(**self.env) if self.suite_settings else dict(self.env)
        self.child = ManagedProcess(
            f"chatserver on port {self.port}",
            [*self.command, "--port", str(self.port)],
            log_dir / f"server-{self.port}.log",
            partial(http_ok, f"{self.http_url}/healthz"),
            port=self.port,
            env=clean_env(**env),
            cwd=ROOT,
        )
        self.child.start(timeout=20.0)
        return self

    def log(self) -> str:
        return "" if self.child is None else self.child.log()

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


def log_entries(server: ServerProcess) -> list[dict[str, Any]]:
    """The server's JSON log lines (anything else, such as a library warning on stderr, is skipped)."""
    return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]


async def wait_for_log(server: ServerProcess, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first log entry matching ``predicate``, waiting up to ``LOG_TIMEOUT`` for the server to write it."""
    deadline = time.monotonic() + LOG_TIMEOUT
    while True:
        for entry in log_entries(server):
            if predicate(entry):
                return entry
        assert time.monotonic() < deadline, f"no matching log line within {LOG_TIMEOUT}s:\n{server.log()}"
        await asyncio.sleep(0.02)


async def refusal(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """Connect and expect the handshake to be refused; return the HTTP status and JSON body."""
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(url, additional_headers=headers or {}):
            pass
    response = refused.value.response
    assert response.headers["content-type"] == "application/json"
    return response.status_code, json.loads(bytes(response.body))


NOT_MEMBER = {
    "reason": "NOT_ALLOWED",
    "field": "clan_id",
    "value": None,
    "message": "Player is not a member of a clan",
    "additional": None,
}
"""The error object a player without a clan gets for anything in a clan room."""


class Client:
    """A chat client over a real WebSocket: send frames, read frames as JSON with a timeout.

    Every client a test opens is remembered in ``opened`` so the suite can close it even when the
    test fails half-way. Frames are buffered without limit, so a test that leaves frames unread
    still closes promptly.
    """

    opened: list[Client] = []

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        Client.opened.append(self)

    @classmethod
    async def connect(
        cls,
        server: ServerProcess,
        bearer: str,
        *,
        via: str = "query",
        ready: bool = True,
        subprotocol: str | None = None,
    ) -> Client:
        return await cls.open(server.ws_url, bearer, via=via, ready=ready, subprotocol=subprotocol)

    @classmethod
    async def open(
        cls, ws_url: str, bearer: str, *, via: str = "query", ready: bool = True, subprotocol: str | None = None
    ) -> Client:
        """Connect to any chat socket URL (a replica, nginx) with the token in the query or the header."""
        offered = [Subprotocol(subprotocol)] if subprotocol else None
        if via == "query":
            connection = await websockets.connect(f"{ws_url}?token={bearer}", max_queue=None, subprotocols=offered)
        else:
            headers = {"Authorization": f"Bearer {bearer}"}
            connection = await websockets.connect(
                ws_url, additional_headers=headers, max_queue=None, subprotocols=offered
            )
        client = cls(connection)
        if ready:
            assert await client.recv() == {"event": "ready", "data": True}
        return client

    async def send(self, frame: Any) -> None:
        await self.connection.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    async def recv(self, timeout: float = FRAME_TIMEOUT) -> Any:
        return json.loads(await asyncio.wait_for(self.connection.recv(), timeout))

    async def close(self) -> None:
        await self.connection.close()

    async def post(self, chat: str, content: str, **data: Any) -> dict[str, Any]:
        """Send a message and return the broadcast this client gets back for it."""
        await self.send({"event": f"{chat}Message", "data": {"content": content, **data}})
        frame = await self.recv()
        assert frame["event"] == "newMessage", frame
        message: dict[str, Any] = frame["message"]
        return message

    async def react(self, chat: str, message_id: str, emoji: str | None) -> Any:
        await self.send({"event": f"{chat}MessageReaction", "data": {"message_id": message_id, "emoji": emoji}})
        return await self.recv()


class StuckClient:
    """A client that upgrades to WebSocket and then never reads: a phone that froze on a bad network.

    A tiny receive buffer (set before connecting) makes the server's sends back up quickly.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    async def connect(cls, server_port: int, bearer: str) -> StuckClient:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", server_port))
        request = (
            f"GET /ws/chat?token={bearer} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += await asyncio.wait_for(loop.sock_recv(sock, 1), FRAME_TIMEOUT)
        assert response.startswith(b"HTTP/1.1 101"), response
        return cls(sock)

    async def read_until_closed(self, timeout: float) -> None:
        """Read (finally) until the server's side is gone: EOF or a reset."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), deadline - loop.time())
            except ConnectionResetError:
                return
            if not chunk:
                return

    def close(self) -> None:
        self.sock.close()


def post_membership(base_url: str, service_token: str, player: str, action: str, clan: str) -> None:
    """``POST /internal/membership`` as the game backend would, asserting the 202."""
    response = httpx.post(
        f"{base_url}/internal/membership",
        json={"player_id": player, "action": action, "clan_id": clan},
        headers={"Authorization": f"Bearer {service_token}"},
        timeout=5,
    )
    assert response.status_code == 202, response.text
