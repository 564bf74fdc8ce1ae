"""Redis clients that survive a restart or a failover, for one Redis or a Redis Cluster found at ``REDIS_URL``.

redis-py keeps pooled connections that the old server closed, and in the versions we support it
neither notices that before using one nor retries by default, so the first command on each pooled
connection after a restart failed. A command client for one Redis retries once, on a fresh
connection, after a ``ConnectionError`` only (a timeout may mean the command ran). Every command we
send is safe to repeat: a repeated numbered publish reaches receivers as a version they already
delivered, and a rate-limit take charged twice is one token. A cluster client follows slot moves
itself and retries a few times, briefly, while a failover promotes a replica.

The subscriber client never retries: its owner must see a broken subscription (frames published
meanwhile are lost) to re-subscribe and catch up, which a silent reconnect inside redis-py would hide.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError, RedisClusterException, RedisError

CommandClient = aioredis.Redis | RedisCluster
_NEVER = Retry(NoBackoff(), retries=0)
REDIS_FAILURES = (RedisError, RedisClusterException, OSError)
"""What a Redis call raises when Redis (or a cluster's slot map) cannot serve it right now."""
COMMANDS_AT_ONCE = 64
"""Commands one client has in flight: bounds its connections per Redis node under a burst (hundreds of
sockets connecting at once each charge the rate limiter), which otherwise opens one connection each."""


async def is_cluster(url: str, **options: Any) -> bool:
    """Whether ``url`` names a node of a Redis Cluster (``INFO cluster``); raises while Redis is unreachable."""
    probe = aioredis.from_url(url, **options)
    try:
        info = await probe.info("cluster")
    finally:
        await probe.aclose()
    return bool(info.get("cluster_enabled"))


async def connect_commands(url: str, **options: Any) -> CommandClient:
    """A command client for whatever ``url`` turns out to be: one Redis, or a cluster (asked with ``INFO``)."""
    if await is_cluster(url, **options):
        return cluster_client(url, **options)
    return command_client(url, **options)


def command_client(url: str, **options: Any) -> aioredis.Redis:
    """A client for commands (publish, scripts, ping) on one Redis: retried once on a dropped connection."""
    retry = Retry(NoBackoff(), retries=1, supported_errors=(ConnectionError,))
    return aioredis.from_url(url, retry=retry, **options)


def cluster_client(url: str, **options: Any) -> RedisCluster:
    """A client for commands on a Redis Cluster: follows slot moves, retries briefly through a failover."""
    retry = Retry(EqualJitterBackoff(cap=0.5, base=0.1), retries=3)  # in every redis-py we accept
    return RedisCluster.from_url(url, retry=retry, **options)


def subscriber_client(url: str, **options: Any) -> aioredis.Redis:
    """A client for one pub/sub connection: errors reach the caller at once, nothing is retried inside."""
    return aioredis.from_url(url, retry=_NEVER, **options)


def node_subscriber_client(host: str, port: int, **options: Any) -> aioredis.Redis:
    """``subscriber_client`` for one node of a cluster (``Redis()`` itself would retry ten times, silently)."""
    return aioredis.Redis(host=host, port=port, retry=_NEVER, **options)


def node_options(url: str, **options: Any) -> dict[str, Any]:
    """What a connection to any node of the cluster at ``url`` needs besides host and port (credentials, TLS)."""
    parsed: dict[str, Any] = dict(parse_url(url))
    for key in ("host", "port", "db", "path", "unix_socket_path"):
        parsed.pop(key, None)
    if parsed.pop("connection_class", None) is SSLConnection:
        parsed["ssl"] = True
    return {**parsed, **options}


class LazyCommands:
    """A command client made on first use (telling one Redis from a cluster takes a round trip), then kept."""

    def __init__(self, url: str, **options: Any) -> None:
        self._url = url
        self._options = options
        self._client: CommandClient | None = None
        self._connecting = asyncio.Lock()

    async def client(self) -> CommandClient:
        async with self._connecting:
            if self._client is None:
                self._client = await connect_commands(self._url, **self._options)
            return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
