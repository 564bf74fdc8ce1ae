"""The reference client: how a game client stays in the chat through drops, deploys and token expiry.

The algorithm is in docs/architecture.md ("The reference client"); run it with ``chatserver client``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from chatserver.protocol.vocabulary import CloseCode

log = logging.getLogger(__name__)

RECONNECT_AT_ONCE = {CloseCode.SERVICE_RESTART.code}
STOP = {1000, 1008, 1009}
RESUME_OVERLAP = timedelta(seconds=2)
STOP_STATUSES = {400, 401, 403, 404}

TokenSource = Callable[[], str]
FrameHandler = Callable[[dict[str, Any]], Awaitable[None] | None]
StatusHandler = Callable[[str], None]


class ClientStopped(Exception):
    """The client gave up for a reason reconnecting cannot fix (see ``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Backoff:
    """Exponential backoff with full jitter: a random wait in ``[0, min(cap, first * 2**attempt))``."""

    first: float = 0.25
    cap: float = 10.0
    attempt: int = 0

    def next_delay(self) -> float:
        delay = random.uniform(0, min(self.cap, self.first * 2**self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class ChatClient:
    """Connects to ``urls`` in turn (replicas or one load balancer), resumes, and keeps the message list.

    ``messages`` holds every message seen, in its newest version, by id; ``since`` is the newest
    ``updatedAt`` of all; ``connects``, ``repeats`` (one version sent twice on one connection) and
    ``not_recovered`` (resumes that told the client to reload history) are there to be checked.
    ``on_status`` hears a line per connect, ready and retry; with ``must_connect_first`` a client that
    never connected gives up after one failed round over ``urls`` (a typo, not an outage).
    """

    urls: Sequence[str]
    token: TokenSource
    backoff: Backoff = field(default_factory=Backoff)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    since: str | None = None
    connects: int = 0
    repeats: int = 0
    not_recovered: int = 0
    on_status: StatusHandler | None = None
    must_connect_first: bool = False
    _failure: str | None = None  # why the last attempt did not connect
    _ended: str = "disconnected"  # how the last connection ended
    _live: Any = None  # the connection once ``ready`` arrived on it, for ``send``
    _on_this_connection: set[tuple[str, str]] = field(default_factory=set)  # versions seen since connecting

    async def send(self, frame: dict[str, Any]) -> bool:
        """Send on the live connection; False when there is none right now (the caller retries later)."""
        if self._live is None:
            return False
        try:
            await self._live.send(json.dumps(frame))
        except ConnectionClosed:
            return False
        return True

    async def run(self, on_frame: FrameHandler | None = None, stop: asyncio.Event | None = None) -> None:
        """Stay connected until ``stop`` is set (or a close that reconnecting cannot fix: ``ClientStopped``)."""
        stop = stop or asyncio.Event()
        turn = 0
        while not stop.is_set():
            url = self.urls[turn % len(self.urls)]
            turn += 1
            self._failure = None
            wait = await self._session(url, on_frame, stop)
            if stop.is_set():
                return
            if self._failure is not None and self.must_connect_first and not self.connects and turn >= len(self.urls):
                raise ClientStopped(f"cannot connect to {url}: {self._failure}")
            delay = self.backoff.next_delay() if wait else 0.0
            self._status(f"{self._failure or self._ended} ({url}); reconnecting in {delay:.1f}s")
            if delay:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass

    async def _session(self, url: str, on_frame: FrameHandler | None, stop: asyncio.Event) -> bool:
        """One connection, from handshake to close; True when the next attempt should back off first."""
        try:
            connection = await websockets.connect(self._address(url), max_queue=None, open_timeout=5)
        except InvalidStatus as refused:
            status = refused.response.status_code
            if status in STOP_STATUSES:
                reason = _refusal(refused.response.body)
                raise ClientStopped(f"handshake refused with HTTP {status}: {reason}") from None
            self._failure = f"handshake refused with HTTP {status}"
            return True
        except (OSError, InvalidHandshake, TimeoutError) as error:
            self._failure = str(error) or type(error).__name__
            return True
        self.connects += 1
        self._on_this_connection = set()
        stopping = asyncio.create_task(stop.wait())
        try:
            async for text in _until(connection, stopping):
                frame = json.loads(text)
                if frame.get("event") == "ready":
                    self.backoff.reset()
                    self._live = connection
                    recovered = "" if "recovered" not in frame else f", recovered: {str(frame['recovered']).lower()}"
                    self._status(f"ready on {url}{recovered}")
                    if frame.get("recovered") is False:
                        self.not_recovered += 1
                elif self._is_new(frame) and on_frame is not None:
                    outcome = on_frame(frame)
                    if outcome is not None:
                        await outcome
        finally:
            self._live = None
            stopping.cancel()
            await connection.close()
        if stop.is_set():
            return False
        self._ended = f"closed with {connection.close_code} {connection.close_reason or ''}".rstrip()
        return self._after_close(connection.close_code, connection.close_reason)

    def _status(self, line: str) -> None:
        if self.on_status is not None:
            self.on_status(line)

    def _after_close(self, code: int | None, reason: str | None) -> bool:
        if code == CloseCode.TOKEN_EXPIRED.code:
            return False  # ``token()`` is asked again on the next connect
        if (code, reason) == (CloseCode.SLOW_CONSUMER.code, CloseCode.SLOW_CONSUMER.reason):
            return True  # the phone stalled; it may read again after a pause
        if code in STOP:
            raise ClientStopped(f"closed with {code}: reconnecting would not help")
        return code not in RECONNECT_AT_ONCE

    def _address(self, url: str) -> str:
        address = f"{url}?token={quote(self.token())}"
        if self.since is None:
            return address
        resume_from = datetime.fromisoformat(self.since) - RESUME_OVERLAP
        return f"{address}&since={quote(resume_from.isoformat(timespec='milliseconds'))}"

    def _is_new(self, frame: dict[str, Any]) -> bool:
        """Take a broadcast into ``messages`` unless it repeats a version held; other frames pass."""
        message = frame.get("message")
        if not isinstance(message, dict) or "updatedAt" not in message:
            return True
        version = (message["_id"], message["updatedAt"])
        if version in self._on_this_connection:
            self.repeats += 1
            return False
        self._on_this_connection.add(version)
        held = self.messages.get(message["_id"])
        if held is not None and held["updatedAt"] >= message["updatedAt"]:
            return False
        self.messages[message["_id"]] = message
        self.since = max(self.since or message["updatedAt"], message["updatedAt"])
        return True


def _refusal(body: bytes | bytearray | None) -> str:
    """A handshake refusal's body as a person reads it: ``REASON: message`` for the chat's error shape."""
    text = (body or b"").decode(errors="replace").strip()
    try:
        errors = json.loads(text)["error"]
        return "; ".join(f"{error['reason']}: {error['message']}" for error in errors)
    except (ValueError, KeyError, TypeError):
        return text or "(no body)"


async def _until(connection: Any, stopping: asyncio.Task[bool]) -> Any:
    """The connection's text frames until it closes or ``stopping`` finishes."""
    while True:
        receiving = asyncio.ensure_future(connection.recv())
        try:
            done, _ = await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled (Ctrl-C): the pending receive must not outlive its connection
            receiving.cancel()
            raise
        if receiving not in done:
            receiving.cancel()
            return
        try:
            yield receiving.result()
        except ConnectionClosed:
            return
