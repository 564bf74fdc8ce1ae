"""Redis clients that survive a Redis restart: commands retried once on a dropped connection.

redis-py keeps pooled connections that the old server closed, and in the versions we support it
neither notices that before using one nor retries by default, so the first command on each pooled
connection after a restart fails. A command client retries once, on a fresh connection, after a
``ConnectionError`` only (a timeout may mean the command ran; it is not repeated). Every command we
send is safe to repeat: a repeated numbered publish reaches receivers as a version they already
delivered, and a rate-limit take charged twice is one token.

The subscriber client never retries: its owner must see a broken subscription (frames published
meanwhile are lost) to re-subscribe and catch up, which a silent reconnect inside redis-py would hide.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError


def command_client(url: str, **options: Any) -> aioredis.Redis:
    """A client for commands (publish, scripts, ping) that retries once when its connection was dropped."""
    retry = Retry(NoBackoff(), retries=1, supported_errors=(ConnectionError,))
    return aioredis.from_url(url, retry=retry, **options)


def subscriber_client(url: str, **options: Any) -> aioredis.Redis:
    """A client for one pub/sub connection: errors reach the caller at once, nothing is retried inside."""
    return aioredis.from_url(url, **options)
