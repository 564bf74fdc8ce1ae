"""Room frames Redis refused, kept and published again: their messages are stored, so they must go out live."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable

from chatserver.broker.base import RoomFrame

log = logging.getLogger(__name__)

UNPUBLISHED_LIMIT = 1000
"""Frames kept to publish again; beyond it the oldest is left to the receivers' catch-up."""
BACKOFF_FIRST_SECONDS = 0.1
REPUBLISH_BACKOFF_MAX_SECONDS = 1.0


def backoff_seconds(failures: int, cap: float) -> float:
    """Capped exponential backoff with jitter, so replicas do not retry in step."""
    return min(cap, BACKOFF_FIRST_SECONDS * 2.0**failures) * random.uniform(0.5, 1.0)


class Republisher:
    """A bounded queue of refused frames and the task (``run``) that publishes them again, oldest first.

    Receivers skip a version they already delivered, so a frame Redis took after all (a timeout)
    is not shown twice.
    """

    def __init__(self, publish: Callable[[str, RoomFrame], Awaitable[None]], limit: int = UNPUBLISHED_LIMIT) -> None:
        self._publish = publish
        self._limit = limit
        self._frames: deque[tuple[str, RoomFrame]] = deque()
        self._waiting = asyncio.Event()

    def keep(self, room: str, frame: RoomFrame) -> None:
        if len(self._frames) >= self._limit:
            dropped_room, _ = self._frames.popleft()
            log.warning("too many unpublished frames; the oldest is left to catch-up", extra={"room": dropped_room})
        self._frames.append((room, frame))
        self._waiting.set()

    async def run(self) -> None:
        failures = 0
        while True:
            await self._waiting.wait()
            while self._frames:
                oldest = self._frames[0]
                try:
                    await self._publish(*oldest)
                except Exception:  # Redis still refuses (or its client failed inside): wait, then again
                    await asyncio.sleep(backoff_seconds(failures, REPUBLISH_BACKOFF_MAX_SECONDS))
                    failures += 1
                    continue
                failures = 0
                if self._frames and self._frames[0] is oldest:
                    self._frames.popleft()
            self._waiting.clear()
