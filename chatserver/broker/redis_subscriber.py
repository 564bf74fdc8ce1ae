"""The subscriber side of the Redis broker: one connection to a single Redis, or one per master of a cluster.

On a single Redis rooms are plain pub/sub channels on one connection. On a Redis Cluster they are
sharded channels (``SSUBSCRIBE``), each served by the master that owns its slot, so the subscriber
holds one connection per master; the membership channel stays plain pub/sub (any node receives a
plain ``PUBLISH``, which is how the game backend sends it). Either way every failure surfaces as
an exception from ``next_message``, and the broker then opens a fresh subscriber: a failover or
a slot moving to another master (Redis then sends an unasked ``sunsubscribe``) is handled as a
reconnect, after which every room catches up from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError

from chatserver.redis_client import node_subscriber_client

MESSAGES_BUFFERED = 1024
"""Messages read from the masters' connections and not yet dispatched; when full, reading waits."""


class SlotMoved(ConnectionError):
    """Redis unsubscribed a sharded channel itself: its slot now lives on another master."""


class Subscriber(ABC):
    """Pub/sub connection(s) of one worker; ``open`` again after any failure."""

    @abstractmethod
    async def open(self, membership: str, rooms: Collection[str]) -> None:
        """Connect and subscribe to the membership channel and every room channel given."""

    @abstractmethod
    async def add(self, channel: str) -> None:
        """Subscribe to one more room channel; its confirmation arrives through ``next_message``."""

    @abstractmethod
    async def remove(self, channel: str) -> None:
        """Unsubscribe from a room channel."""

    @abstractmethod
    async def next_message(self, timeout: float) -> dict[str, Any] | None:
        """The next pub/sub message (None after ``timeout``); raises when a connection broke."""

    @abstractmethod
    async def close(self) -> None:
        """Drop every connection; safe to call more than once."""


class PlainSubscriber(Subscriber):
    """Every channel on one connection to a single Redis."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._pubsub: Any = None

    async def open(self, membership: str, rooms: Collection[str]) -> None:
        pubsub = self._client.pubsub()
        await pubsub.subscribe(membership, *rooms)
        self._pubsub = pubsub

    async def add(self, channel: str) -> None:
        await self._pubsub.subscribe(channel)

    async def remove(self, channel: str) -> None:
        await self._pubsub.unsubscribe(channel)

    async def next_message(self, timeout: float) -> dict[str, Any] | None:
        message: dict[str, Any] | None = await self._pubsub.get_message(timeout=timeout)
        return message

    async def close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


class ShardedSubscriber(Subscriber):
    """Room channels with ``SSUBSCRIBE`` on the master owning each one's slot; membership on the first master.

    A reader task per master with subscriptions feeds one bounded queue; a reader that fails puts its
    error there, so the broker sees it on its next read and reconnects everything.
    """

    def __init__(self, cluster: RedisCluster, node_options: dict[str, Any]) -> None:
        self._cluster = cluster
        self._node_options = node_options
        self._pubsubs: dict[str, Any] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._channel_nodes: dict[str, str] = {}
        self._messages: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue(MESSAGES_BUFFERED)

    async def open(self, membership: str, rooms: Collection[str]) -> None:
        await self._cluster.initialize()
        await self._cluster.nodes_manager.initialize()  # the slot map as it is now, after any failover
        masters = self._cluster.get_primaries()
        self._messages = asyncio.Queue(MESSAGES_BUFFERED)
        for node in masters:
            client = node_subscriber_client(node.host, int(node.port), **self._node_options)
            self._pubsubs[node.name] = client.pubsub()
        first = self._pubsubs[masters[0].name]
        await first.subscribe(membership)
        self._start_reader(masters[0].name)
        for channel in rooms:
            await self.add(channel)

    async def add(self, channel: str) -> None:
        node = self._cluster.get_node_from_key(channel)
        name = "" if node is None else node.name
        pubsub = self._pubsubs.get(name)
        if pubsub is None:
            raise SlotMoved(f"{channel} belongs to {name}, a master this subscriber has no connection to")
        await pubsub.ssubscribe(channel)
        self._channel_nodes[channel] = name
        self._start_reader(name)

    async def remove(self, channel: str) -> None:
        name = self._channel_nodes.pop(channel, None)
        if name is not None and name in self._pubsubs:
            await self._pubsubs[name].sunsubscribe(channel)

    async def next_message(self, timeout: float) -> dict[str, Any] | None:
        try:
            item = await asyncio.wait_for(self._messages.get(), timeout)
        except TimeoutError:
            return None
        if isinstance(item, BaseException):
            raise item
        if item["type"] == "sunsubscribe" and item["channel"] in self._channel_nodes:
            raise SlotMoved(f"Redis moved {item['channel']} to another master")
        return item

    async def close(self) -> None:
        readers, self._readers = self._readers, {}
        for task in readers.values():
            task.cancel()
        await asyncio.gather(*readers.values(), return_exceptions=True)
        pubsubs, self._pubsubs = self._pubsubs, {}
        self._channel_nodes.clear()
        for pubsub in pubsubs.values():
            with contextlib.suppress(Exception):
                await pubsub.aclose()
                await pubsub.connection_pool.disconnect()

    def _start_reader(self, name: str) -> None:
        if name not in self._readers:
            self._readers[name] = asyncio.create_task(self._read(self._pubsubs[name]), name=f"redis-reader-{name}")

    async def _read(self, pubsub: Any) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    await self._messages.put(message)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # any failure of this master's connection ends the whole subscriber
            await self._messages.put(error)
