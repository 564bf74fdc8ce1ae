"""Frames Redis refused: published again oldest first once it takes them, at most the bound kept."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from chatserver.broker.base import RoomFrame
from chatserver.broker.republish import Republisher

WAIT_SECONDS = 5.0


class FlakyRedis:
    """A publish target that refuses until told to accept, and records what it accepted."""

    def __init__(self) -> None:
        self.accepting = asyncio.Event()
        self.published: list[tuple[str, str]] = []

    async def publish(self, room: str, frame: RoomFrame) -> None:
        if not self.accepting.is_set():
            raise ConnectionError("Redis is down")
        self.published.append((room, frame.message_id))

    async def until_published(self, count: int) -> list[tuple[str, str]]:
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while len(self.published) < count:
            assert asyncio.get_running_loop().time() < deadline, self.published
            await asyncio.sleep(0.01)
        return self.published


def frame(n: int) -> RoomFrame:
    return RoomFrame(f"text {n}", f"m{n}", f"2026-01-01T00:00:00.{n:03d}Z", 0.0)


@pytest.fixture
def redis() -> FlakyRedis:
    return FlakyRedis()


@contextlib.asynccontextmanager
async def running(republisher: Republisher) -> AsyncIterator[None]:
    task = asyncio.create_task(republisher.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_refused_frames_go_out_in_order_once_redis_takes_them(redis: FlakyRedis) -> None:
    republisher = Republisher(redis.publish)
    async with running(republisher):
        for n, room in enumerate(["global", "clan:a", "global"]):
            republisher.keep(room, frame(n))
        await asyncio.sleep(0.05)  # refused meanwhile, retried with backoff
        redis.accepting.set()
        assert await redis.until_published(3) == [("global", "m0"), ("clan:a", "m1"), ("global", "m2")]


async def test_beyond_the_bound_the_oldest_frames_are_left_to_catch_up(redis: FlakyRedis) -> None:
    republisher = Republisher(redis.publish, limit=2)
    for n in range(4):
        republisher.keep("global", frame(n))
    redis.accepting.set()
    async with running(republisher):
        assert await redis.until_published(2) == [("global", "m2"), ("global", "m3")]
