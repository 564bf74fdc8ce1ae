"""Per-player token buckets for messages, reactions and history reads.

One bucket per (kind, player): ``rate`` tokens a second up to ``burst``. With Redis the bucket lives
there, updated by one Lua script, so the limit holds across every replica; embedded it lives in this
process. If Redis cannot answer, requests are let through (the limiter must not become an outage of
its own; delivery then fails or succeeds on its own terms).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any

from chatserver.redis_client import COMMANDS_AT_ONCE, REDIS_FAILURES, CommandClient, connect_commands
from chatserver.settings import Rate

log = logging.getLogger(__name__)


class RateLimiter(ABC):
    @abstractmethod
    async def take(self, key: str, rate: Rate) -> int:
        """Take one token from ``key``'s bucket: 0 if allowed, else milliseconds until a token is back."""

    async def close(self) -> None:
        """Release connections."""


def _refill(tokens: float, elapsed: float, rate: Rate) -> float:
    return min(float(rate.burst), tokens + elapsed * rate.per_second)


def _wait_ms(tokens: float, rate: Rate) -> int:
    return max(1, math.ceil((1 - tokens) / rate.per_second * 1000))


class MemoryRateLimiter(RateLimiter):
    """Buckets in this process; the least recently used are forgotten beyond ``max_keys`` (a full bucket)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_keys = max_keys

    async def take(self, key: str, rate: Rate) -> int:
        now = time.monotonic()
        tokens, last = self._buckets.pop(key, (float(rate.burst), now))
        tokens = _refill(tokens, now - last, rate)
        allowed = tokens >= 1
        self._buckets[key] = (tokens - 1 if allowed else tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return 0 if allowed else _wait_ms(tokens, rate)


# KEYS[1] bucket; ARGV rate per second, burst. Redis's own clock, so replicas' clocks do not matter.
_TAKE_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait_ms = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait_ms = math.max(1, math.ceil((1 - tokens) / rate * 1000))
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return wait_ms
"""


class RedisRateLimiter(RateLimiter):
    """Buckets in Redis (one Redis or a cluster) under ``<prefix>rate:<key>``, each take one atomic script call."""

    def __init__(self, url: str, prefix: str) -> None:
        self._url = url
        self._prefix = f"{prefix}rate:"
        self._client: CommandClient | None = None
        self._script: Any = None
        self._connecting = asyncio.Lock()
        self._in_flight = asyncio.Semaphore(COMMANDS_AT_ONCE)

    async def take(self, key: str, rate: Rate) -> int:
        try:
            async with self._in_flight:
                script = await self._connected()
                wait_ms = await script(keys=[self._prefix + key], args=[rate.per_second, rate.burst])
        except REDIS_FAILURES as error:
            log.warning("rate limiter unavailable, letting the request through: %s", error)
            return 0
        except Exception:  # a fault inside the Redis client: the limiter must not turn it into an outage
            log.exception("rate limiter failed, letting the request through")
            return 0
        return int(wait_ms)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _connected(self) -> Any:
        """The take script on a client for what ``url`` turned out to be (asked once, on first use)."""
        async with self._connecting:
            if self._client is None:
                client = await connect_commands(self._url, socket_timeout=1.0, socket_connect_timeout=1.0)
                self._script = client.register_script(_TAKE_SCRIPT)
                self._client = client
            return self._script
