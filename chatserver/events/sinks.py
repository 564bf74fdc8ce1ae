"""Where events go: the Redis Stream ``<prefix>events`` with ``REDIS_URL`` (one Redis or a Redis Cluster, where
the stream is one key, so one slot), else this process's hooks.

The stream is trimmed approximately (``MAXLEN ~``) to ``CHAT_EVENTS_MAXLEN`` entries on every append,
which costs Redis nothing extra: it drops whole radix-tree nodes. Embedded, the hooks given to
``create_app(settings, on_event=...)`` are the stream: an event counts as sent once every hook returned.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from chatserver.events.model import encode
from chatserver.redis_client import REDIS_FAILURES, CommandClient, connect_commands

log = logging.getLogger(__name__)

EventHook = Callable[[dict[str, Any]], Awaitable[None]]
"""Called with each event object (the stream entry's ``data``, decoded), at least once per event."""


class EventsUnavailable(Exception):
    """The events were not taken; they stay in the outbox and the repair sweep tries again."""


class EventSink(ABC):
    @abstractmethod
    async def append(self, events: Sequence[dict[str, Any]]) -> None:
        """Append ``events`` in order; raises ``EventsUnavailable``."""

    @abstractmethod
    async def claim_repair(self, seconds: float) -> bool:
        """True when this worker may run the repair sweep now (one worker at a time, for ``seconds``)."""

    async def close(self) -> None:
        """Release connections."""


class InProcessEvents(EventSink):
    """Embedded mode: each event awaited through every hook, in order."""

    def __init__(self, hooks: Sequence[EventHook] = ()) -> None:
        self._hooks = tuple(hooks)

    async def append(self, events: Sequence[dict[str, Any]]) -> None:
        for event in events:
            for hook in self._hooks:
                try:
                    await hook(event)
                except Exception as error:
                    log.exception("an event hook failed; the event is offered again later", extra={"id": event["id"]})
                    raise EventsUnavailable(f"event hook failed: {error}") from error

    async def claim_repair(self, seconds: float) -> bool:
        return True


class RedisEventStream(EventSink):
    """``XADD <prefix>events MAXLEN ~ <maxlen> * data <json>``, pipelined; the repair lock is a ``SET NX PX``.

    The client is made on first use, for whatever ``REDIS_URL`` turns out to be (asked with ``INFO``).
    """

    def __init__(self, url: str, prefix: str, maxlen: int) -> None:
        self.key = f"{prefix}events"
        self._repair_key = f"{prefix}events:repair"
        self._maxlen = maxlen
        self._url = url
        self._client: CommandClient | None = None
        self._connecting = asyncio.Lock()

    async def append(self, events: Sequence[dict[str, Any]]) -> None:
        try:
            pipe = (await self._connected()).pipeline()
            for event in events:
                pipe.xadd(self.key, {"data": encode(event)}, maxlen=self._maxlen, approximate=True)
            await pipe.execute()
        except REDIS_FAILURES as error:
            raise EventsUnavailable(f"Redis XADD failed: {error}") from error

    async def claim_repair(self, seconds: float) -> bool:
        try:
            client = await self._connected()
            return bool(await client.set(self._repair_key, "1", nx=True, px=int(seconds * 1000)))
        except REDIS_FAILURES:
            return False

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _connected(self) -> CommandClient:
        async with self._connecting:
            if self._client is None:
                self._client = await connect_commands(
                    self._url, decode_responses=True, socket_timeout=3.0, socket_connect_timeout=2.0
                )
            return self._client
