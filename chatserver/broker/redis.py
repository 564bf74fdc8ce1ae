"""The Redis broker: a channel per room and one for membership, on one Redis or a Redis Cluster.

A room message is one header line, ``<seq> <sent_at> <message id> <updatedAt>``, then the frame's
text (JSON frames hold no raw newline). ``seq`` is the room's counter, incremented and published in
one Lua call, so the numbers on a channel have no holes unless a subscriber missed a message.
Frames are published already encoded and handed on unchanged: a message is serialised once in the
whole cluster. Names (``RedisNames``) are ``<prefix>room:<room>`` and ``<prefix>seq:<room>`` on one
Redis; on a cluster the room is a hash tag (``<prefix>room:{<room>}``), so a room's counter and
channel share a slot, and rooms are sharded channels spread over the masters. ``<prefix>membership``
is plain pub/sub everywhere. Whether ``REDIS_URL`` is a cluster is asked at the first connection.

Outages: the listener notices a broken subscription (a restart, a failover, a slot moved),
reconnects with capped exponential backoff and jitter and re-subscribes to every room it still
needs; the worker's handler then catches every room up. While Redis is down ``publish`` raises
``BrokerUnavailable`` and ``ping`` is False (``/readyz`` 503); a refused frame (its message is
stored) is published again once Redis takes publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import ConnectionError

from chatserver.broker.base import Broker, BrokerEventHandler, BrokerUnavailable, RoomFrame
from chatserver.broker.redis_names import RedisNames
from chatserver.broker.redis_subscriber import PlainSubscriber, ShardedSubscriber, Subscriber
from chatserver.broker.republish import Republisher, backoff_seconds
from chatserver.protocol import MembershipChange
from chatserver.redis_client import (
    COMMANDS_AT_ONCE,
    REDIS_FAILURES,
    CommandClient,
    cluster_client,
    command_client,
    is_cluster,
    node_options,
    subscriber_client,
)

log = logging.getLogger(__name__)

_TIMEOUTS = {"socket_timeout": 3.0, "socket_connect_timeout": 2.0}
_SUBSCRIBE_CONFIRM_SECONDS = 3.0
_POLL_SECONDS = 1.0
_BACKOFF_MAX_SECONDS = 5.0
MEMBERSHIP_QUEUE_LIMIT = 1000
"""Membership changes received and not yet applied; when full, the listener waits (see ``_queue_membership``)."""
# KEYS: the room's counter, its channel (one slot). ARGV: the message after the seq. Atomic: numbers follow
# publish order.
_NUMBERED_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
redis.call('{publish}', KEYS[2], seq .. ' ' .. ARGV[1])
return seq
"""


@dataclass
class _Connections:
    """What the broker talks to once it knows whether ``REDIS_URL`` is a cluster."""

    names: RedisNames
    commands: CommandClient
    subscriber: Subscriber
    numbered_publish: Any
    subscriber_client: aioredis.Redis | None = None

    async def aclose(self) -> None:
        await self.subscriber.close()
        await self.commands.aclose()
        if self.subscriber_client is not None:
            await self.subscriber_client.aclose()


class RedisBroker(Broker):
    """Room and membership channels on Redis; see the module docstring for the life of a connection."""

    def __init__(self, url: str, prefix: str) -> None:
        self._url = url
        self._prefix = prefix
        self._redis: _Connections | None = None
        self._connecting = asyncio.Lock()
        self._unpublished = Republisher(self._publish_numbered)
        self._republisher: asyncio.Task[None] | None = None
        self._wanted: set[str] = set()
        self._live: set[str] = set()
        self._confirmations: dict[str, list[asyncio.Future[None]]] = {}
        self._listening = False
        self._resubscribe = False
        self._listener: asyncio.Task[None] | None = None
        self._membership_worker: asyncio.Task[None] | None = None
        self._membership_queue: asyncio.Queue[MembershipChange] = asyncio.Queue(MEMBERSHIP_QUEUE_LIMIT)
        self._handler: BrokerEventHandler | None = None
        self._commands = asyncio.Lock()
        self._in_flight = asyncio.Semaphore(COMMANDS_AT_ONCE)

    @property
    def sharded(self) -> bool | None:
        """True on a Redis Cluster, False on one Redis, None until the first connection found out."""
        return None if self._redis is None else self._redis.names.sharded

    async def start(self, handler: BrokerEventHandler) -> None:
        """Begin listening; does not wait for Redis, so a replica can start during a Redis outage."""
        self._handler = handler
        self._listener = asyncio.create_task(self._listen_forever(), name="redis-listener")
        self._membership_worker = asyncio.create_task(self._apply_memberships(), name="membership-worker")
        self._republisher = asyncio.create_task(self._unpublished.run(), name="republisher")

    async def stop(self) -> None:
        for task in (self._listener, self._membership_worker, self._republisher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.close_client()

    async def subscribe(self, room: str) -> None:
        """Subscribe and wait for Redis to confirm, so a socket told ``ready`` misses nothing after it."""
        self._wanted.add(room)
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(room, []).append(confirmed)
        await self._sync_channel(room)
        try:
            await asyncio.wait_for(confirmed, _SUBSCRIBE_CONFIRM_SECONDS)
        except TimeoutError:
            log.warning("subscription not confirmed yet; the listener re-subscribes on reconnect", extra={"room": room})
        finally:
            waiting = self._confirmations.get(room, [])
            if confirmed in waiting:
                waiting.remove(confirmed)

    async def unsubscribe(self, room: str) -> None:
        self._wanted.discard(room)
        await self._sync_channel(room)

    async def publish(self, room: str, frame: RoomFrame) -> None:
        """Publish now; if Redis refuses, raise and keep the frame to publish again once Redis takes it."""
        try:
            await self._publish_numbered(room, frame)
        except Exception as error:  # Redis refused, or its client failed inside: either way, try again later
            self._unpublished.keep(room, frame)
            raise BrokerUnavailable(f"Redis publish failed: {error!r}") from error

    async def _publish_numbered(self, room: str, frame: RoomFrame) -> None:
        redis = await self._connections()
        rest = f"{frame.sent_at:.6f} {frame.message_id} {frame.updated_at}\n{frame.text}"
        keys = [redis.names.seq_key(room), redis.names.room_channel(room)]
        async with self._in_flight:
            await redis.numbered_publish(keys=keys, args=[rest])

    async def publish_membership(self, change: MembershipChange) -> None:
        try:
            redis = await self._connections()
            await redis.commands.publish(redis.names.membership, change.model_dump_json())
        except REDIS_FAILURES as error:
            raise BrokerUnavailable(f"Redis publish failed: {error}") from error

    async def ping(self) -> bool:
        if not self._listening:
            return False
        try:
            return bool(await (await self._connections()).commands.ping())
        except REDIS_FAILURES:
            return False

    @property
    def membership_backlog(self) -> int:
        """Membership changes received and not yet applied (at most ``MEMBERSHIP_QUEUE_LIMIT``)."""
        return self._membership_queue.qsize()

    async def close_client(self) -> None:
        """Release every connection (also for one-shot publishers, such as the CLI, that never started)."""
        redis, self._redis = self._redis, None
        if redis is not None:
            await redis.aclose()

    async def _connections(self) -> _Connections:
        """Connect on first use, asking Redis whether it is a cluster; raises while it cannot be reached."""
        async with self._connecting:
            if self._redis is None:
                sharded = await is_cluster(self._url, **_TIMEOUTS)
                self._redis = _connections_for(self._url, RedisNames(self._prefix, sharded))
                log.info("redis broker connected", extra={"cluster": sharded})
            return self._redis

    async def _sync_channel(self, room: str) -> None:
        """Make the live subscription match ``_wanted`` for one room, whatever order calls came in.

        Commands go out one at a time under a lock and Redis applies them in order, so ``_live``
        (what was last sent for each room) is what the server holds for this connection.
        """
        async with self._commands:
            redis = self._redis
            if not self._listening or redis is None:
                return  # the listener subscribes to everything wanted when it (re)connects
            channel = redis.names.room_channel(room)
            try:
                if room in self._wanted and room not in self._live:
                    await redis.subscriber.add(channel)
                    self._live.add(room)
                elif room not in self._wanted and room in self._live:
                    await redis.subscriber.remove(channel)
                    self._live.discard(room)
            except REDIS_FAILURES:
                log.warning("subscription change failed; the listener reconnects", extra={"room": room})
                self._resubscribe = True

    async def _listen_forever(self) -> None:
        failures = 0
        while True:
            try:
                await self._connect()
                failures = 0
                await self._read_messages()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # whatever broke, the listener must come back: it is all delivery
                self._listening = False
                if self._redis is not None:
                    await self._redis.subscriber.close()
                delay = backoff_seconds(failures, _BACKOFF_MAX_SECONDS)
                failures += 1
                if isinstance(error, REDIS_FAILURES):
                    log.warning("redis subscriber lost (%s); reconnecting in %.2fs", error, delay)
                else:
                    log.exception("redis subscriber failed; reconnecting in %.2fs", delay)
                await asyncio.sleep(delay)

    async def _connect(self) -> None:
        """A fresh subscriber with every channel this worker still needs."""
        redis = await self._connections()
        async with self._commands:
            self._resubscribe = False
            rooms = set(self._wanted)
            await redis.subscriber.open(redis.names.membership, [redis.names.room_channel(room) for room in rooms])
            self._live = rooms
        self._listening = True
        log.info("redis subscriber connected", extra={"rooms": len(rooms)})
        if self._handler is not None:
            self._handler.handle_resubscribed()

    async def _read_messages(self) -> None:
        assert self._redis is not None
        subscriber, names = self._redis.subscriber, self._redis.names
        while True:
            if self._resubscribe:
                raise ConnectionError("a subscription change failed")
            message = await subscriber.next_message(_POLL_SECONDS)
            if message is None:
                continue
            if message["type"] == "message" and message["channel"] == names.membership:
                await self._queue_membership(message["data"])
                continue
            try:
                self._dispatch(message, names)
            except Exception:  # one bad message (a foreign publisher, say) must not end delivery for all
                log.exception(
                    "dropping a pub/sub message that could not be dispatched", extra={"channel": message["channel"]}
                )

    def _dispatch(self, message: dict[str, Any], names: RedisNames) -> None:
        kind, room = message["type"], names.room_of(message["channel"])
        if room is None:
            return
        if kind in ("subscribe", "ssubscribe"):
            for confirmed in self._confirmations.pop(room, []):
                if not confirmed.done():
                    confirmed.set_result(None)
        elif kind in ("message", "smessage") and self._handler is not None:
            header, _, text = message["data"].partition("\n")
            seq, sent_at, message_id, updated_at = header.split(" ")
            self._handler.handle_room_frame(room, RoomFrame(text, message_id, updated_at, float(sent_at), int(seq)))

    async def _queue_membership(self, text: str) -> None:
        """Queue a change for the membership worker; when the queue is full, stop reading until it has room.

        Changes are never dropped (a socket left in a clan it quit would keep reading that clan), and
        memory stays bounded: while the listener waits, Redis buffers for it, and past its output
        buffer limit it cuts the subscriber, which reconnects and catches every room up.
        """
        try:
            change = MembershipChange.model_validate_json(text)
        except ValidationError as error:
            log.warning("ignoring malformed membership message: %s", error)
            return
        if self._membership_queue.full():
            log.warning("membership changes arrive faster than they are applied; pausing the subscriber")
        await self._membership_queue.put(change)

    async def _apply_memberships(self) -> None:
        """Apply membership changes in order, outside the listener, which must keep reading meanwhile."""
        while True:
            change = await self._membership_queue.get()
            if self._handler is None:
                continue
            try:
                await self._handler.handle_membership(change)
            except Exception:
                log.exception("membership change failed", extra={"player_id": change.player_id})


def _connections_for(url: str, names: RedisNames) -> _Connections:
    publish = "SPUBLISH" if names.sharded else "PUBLISH"
    commands: CommandClient
    if names.sharded:
        commands = cluster = cluster_client(url, decode_responses=True, **_TIMEOUTS)
        subscriber: Subscriber = ShardedSubscriber(cluster, node_options(url, decode_responses=True, **_TIMEOUTS))
        plain = None
    else:
        commands = command_client(url, decode_responses=True, **_TIMEOUTS)
        plain = subscriber_client(url, decode_responses=True, **_TIMEOUTS)
        subscriber = PlainSubscriber(plain)
    script = commands.register_script(_NUMBERED_PUBLISH.replace("{publish}", publish))
    return _Connections(names, commands, subscriber, script, plain)
