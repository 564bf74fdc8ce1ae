"""Recent reports for moderators: the newest ``REPORTS_KEPT`` in a Redis list with ``REDIS_URL``, else in this process.

The durable record of every report is its ``message.reported`` event; this log only answers
``GET /chat/moderation/reports``, so it keeps a bounded window, newest first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque

from redis.exceptions import RedisError

from chatserver.protocol.models import Report
from chatserver.redis_client import LazyCommands

REPORTS_KEPT = 1000


class ReportsUnavailable(Exception):
    """The log could not be written or read right now."""


class ReportLog(ABC):
    @abstractmethod
    async def add(self, report: Report) -> None:
        """Keep a report; raises ``ReportsUnavailable``."""

    @abstractmethod
    async def recent(self, limit: int) -> list[Report]:
        """Up to ``limit`` reports, newest first; raises ``ReportsUnavailable``."""

    async def close(self) -> None:
        """Release connections."""


class MemoryReports(ReportLog):
    def __init__(self, kept: int = REPORTS_KEPT) -> None:
        self._reports: deque[Report] = deque(maxlen=kept)

    async def add(self, report: Report) -> None:
        self._reports.appendleft(report)

    async def recent(self, limit: int) -> list[Report]:
        return list(self._reports)[:limit]


class RedisReports(ReportLog):
    """Reports in the list ``<prefix>reports``, pushed at the head and trimmed to ``kept`` in one transaction."""

    def __init__(self, url: str, prefix: str, kept: int = REPORTS_KEPT) -> None:
        # One Redis or a cluster, retried once after a restart dropped its pooled connection.
        self._redis = LazyCommands(url, decode_responses=True, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._key = f"{prefix}reports"
        self._kept = kept

    async def add(self, report: Report) -> None:
        try:
            # Push then trim, in order, in one round trip; a transaction is not needed for one key.
            async with (await self._redis.client()).pipeline(transaction=False) as pipe:
                pipe.lpush(self._key, report.model_dump_json())
                pipe.ltrim(self._key, 0, self._kept - 1)
                await pipe.execute()
        except (RedisError, OSError) as error:
            raise ReportsUnavailable(f"Redis: {error}") from error

    async def recent(self, limit: int) -> list[Report]:
        try:
            entries = await (await self._redis.client()).lrange(self._key, 0, limit - 1)
        except (RedisError, OSError) as error:
            raise ReportsUnavailable(f"Redis: {error}") from error
        return [Report.model_validate_json(entry) for entry in entries]

    async def close(self) -> None:
        await self._redis.close()
