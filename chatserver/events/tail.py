"""``chatserver events``: print the event stream, one JSON object (an entry's ``data``) a line.

Without ``--group`` it reads with ``XREAD`` from ``--from`` (``$``: what comes after now, ``0``: from the
start). With ``--group`` it reads through that consumer group (created at ``--from`` if it does not exist
yet; an existing group keeps its own position), first this consumer's entries read before but never
acknowledged, then new ones, and acknowledges each entry once printed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from chatserver.redis_client import connect_commands

BLOCK_MS = 2000
READ_TIMEOUT = BLOCK_MS / 1000 + 5  # a blocked read answers within BLOCK_MS; the socket waits longer
BATCH = 100


@dataclass(frozen=True)
class TailRequest:
    key: str
    start: str
    group: str | None
    consumer: str
    count: int | None


async def tail(url: str, request: TailRequest, emit: Callable[[str], None]) -> None:
    """Print entries until ``count`` were printed (forever without it). Raises ``REDIS_FAILURES``."""
    client = await connect_commands(url, decode_responses=True, socket_timeout=READ_TIMEOUT, socket_connect_timeout=3)
    try:
        reader = _GroupReader(client, request) if request.group else _StreamReader(client, request)
        await reader.prepare()
        printed = 0
        while request.count is None or printed < request.count:
            for entry_id, fields in await reader.read():
                if request.count is not None and printed >= request.count:
                    break
                if fields and "data" in fields:  # a pending entry trimmed away since comes back empty
                    emit(fields["data"])
                    printed += 1
                await reader.done(entry_id)
    finally:
        await client.aclose()


class _StreamReader:
    def __init__(self, client: Any, request: TailRequest) -> None:
        self._client = client
        self._key = request.key
        self._last = request.start

    async def prepare(self) -> None:
        """``$`` becomes the id of the newest entry now, so nothing appended between reads is missed."""
        if self._last == "$":
            newest = await self._client.xrevrange(self._key, count=1)
            self._last = newest[0][0] if newest else "0-0"

    async def read(self) -> list[tuple[str, dict[str, str]]]:
        answer = await self._client.xread({self._key: self._last}, count=BATCH, block=BLOCK_MS)
        entries: list[tuple[str, dict[str, str]]] = answer[0][1] if answer else []
        if entries:
            self._last = entries[-1][0]
        return entries

    async def done(self, entry_id: str) -> None:
        """Nothing to acknowledge without a group."""


class _GroupReader:
    def __init__(self, client: Any, request: TailRequest) -> None:
        assert request.group is not None
        self._client = client
        self._key = request.key
        self._group = request.group
        self._consumer = request.consumer
        self._start = request.start
        self._position = "0"  # this consumer's unacknowledged entries first, then ">" (new ones)

    async def prepare(self) -> None:
        try:
            await self._client.xgroup_create(self._key, self._group, id=self._start, mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def read(self) -> list[tuple[str, dict[str, str]]]:
        block = None if self._position == "0" else BLOCK_MS
        answer = await self._client.xreadgroup(
            self._group, self._consumer, {self._key: self._position}, count=BATCH, block=block
        )
        entries: list[tuple[str, dict[str, str]]] = answer[0][1] if answer else []
        if self._position == "0" and not entries:
            self._position = ">"
        return entries

    async def done(self, entry_id: str) -> None:
        await self._client.xack(self._key, self._group, entry_id)
