"""Mutes shared by every replica: in Redis with ``REDIS_URL`` (one hash), else in this process.

Every frame of a player reads the registry (one ``HGET``, as the rate limiter's one script call), so a
mute made through any replica refuses that player's very next frame on every replica; there is no
cache to go stale. Should Redis not answer, a frame is let through (logged), as the rate limiter does:
the chat must not stop for everyone because the registry cannot be read.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod

from pydantic import ValidationError
from redis.exceptions import RedisError

from chatserver.protocol.models import Mute
from chatserver.redis_client import LazyCommands

log = logging.getLogger(__name__)


class MutesUnavailable(Exception):
    """The registry could not be changed or listed right now."""


def _in_force(mute: Mute, now: float) -> bool:
    return mute.until > _iso(now)


def _iso(moment: float) -> str:
    """Epoch seconds as ``2026-12-02T15:30:00.000Z``; such strings sort in time order."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment * 1000) % 1000:03d}Z"


def mute_until(minutes: int, now: float | None = None) -> str:
    """When a mute of ``minutes`` starting now ends."""
    return _iso((time.time() if now is None else now) + minutes * 60)


class MuteRegistry(ABC):
    @abstractmethod
    async def mute(self, mute: Mute) -> None:
        """Mute (or re-mute, replacing the old mute); raises ``MutesUnavailable``."""

    @abstractmethod
    async def unmute(self, player_id: str) -> bool:
        """Lift a mute; False if the player was not muted. Raises ``MutesUnavailable``."""

    @abstractmethod
    async def active(self, player_id: str) -> Mute | None:
        """The player's mute in force, if any; never raises."""

    @abstractmethod
    async def all(self) -> list[Mute]:
        """Every mute in force, soonest to end first; raises ``MutesUnavailable``."""

    async def close(self) -> None:
        """Release connections."""


class MemoryMutes(MuteRegistry):
    """This process's mutes (the embedded single-process server)."""

    def __init__(self) -> None:
        self._mutes: dict[str, Mute] = {}

    async def mute(self, mute: Mute) -> None:
        self._mutes[mute.player_id] = mute

    async def unmute(self, player_id: str) -> bool:
        mute = self._mutes.pop(player_id, None)
        return mute is not None and _in_force(mute, time.time())

    async def active(self, player_id: str) -> Mute | None:
        mute = self._mutes.get(player_id)
        return mute if mute is not None and _in_force(mute, time.time()) else None

    async def all(self) -> list[Mute]:
        now = time.time()
        for player_id in [p for p, mute in self._mutes.items() if not _in_force(mute, now)]:
            del self._mutes[player_id]
        return sorted(self._mutes.values(), key=lambda mute: mute.until)


def _parsed(player_id: str | bytes, raw: str | bytes | None) -> Mute | None:
    """A registry entry as a mute; one that is not (written by something else) is logged and ignored."""
    if raw is None:
        return None
    try:
        return Mute.model_validate_json(raw)
    except ValidationError:
        log.warning("ignoring a malformed mute entry", extra={"player_id": str(player_id)})
        return None


# KEYS[1] the hash; ARGV player id, the value read. Drops an ended mute unless it was replaced meanwhile.
_DROP_IF_UNCHANGED = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


class RedisMutes(MuteRegistry):
    """Mutes in the hash ``<prefix>mutes``: player id to the mute's JSON; ended mutes are dropped on listing."""

    def __init__(self, url: str, prefix: str) -> None:
        # One Redis or a cluster, retried once after a restart dropped its pooled connection.
        self._redis = LazyCommands(url, decode_responses=True, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._key = f"{prefix}mutes"

    async def mute(self, mute: Mute) -> None:
        try:
            await (await self._redis.client()).hset(self._key, mute.player_id, mute.model_dump_json())
        except (RedisError, OSError) as error:
            raise MutesUnavailable(f"Redis: {error}") from error

    async def unmute(self, player_id: str) -> bool:
        try:
            client = await self._redis.client()
            raw = await client.hget(self._key, player_id)
            removed = await client.hdel(self._key, player_id)
        except (RedisError, OSError) as error:
            raise MutesUnavailable(f"Redis: {error}") from error
        mute = _parsed(player_id, raw)
        return bool(removed) and mute is not None and _in_force(mute, time.time())

    async def active(self, player_id: str) -> Mute | None:
        try:
            raw = await (await self._redis.client()).hget(self._key, player_id)
        except (RedisError, OSError) as error:
            log.warning("mute registry unavailable, letting the frame through: %s", error)
            return None
        mute = _parsed(player_id, raw)
        return mute if mute is not None and _in_force(mute, time.time()) else None

    async def all(self) -> list[Mute]:
        now = time.time()
        try:
            client = await self._redis.client()
            entries = await client.hgetall(self._key)
            mutes = []
            for player_id, raw in entries.items():
                mute = _parsed(player_id, raw)
                if mute is not None and _in_force(mute, now):
                    mutes.append(mute)
                elif mute is not None:
                    await client.eval(_DROP_IF_UNCHANGED, 1, self._key, player_id, raw)
        except (RedisError, OSError) as error:
            raise MutesUnavailable(f"Redis: {error}") from error
        return sorted(mutes, key=lambda mute: mute.until)

    async def close(self) -> None:
        await self._redis.close()
