"""The Redis broker: one pub/sub channel per room and one for membership, shared by every replica.

Channels (PROTOCOL.md §7): ``<prefix>room:global``, ``<prefix>room:clan:<clan_id>`` and
``<prefix>membership``. A room message is one header line, ``<seq> <sent_at> <message id> <updatedAt>``,
then the frame's text (JSON frames hold no raw newline). ``seq`` is the room's counter
(``<prefix>seq:<room>``), incremented and published in one Lua call, so the numbers on a channel have
no holes unless a subscriber missed a message; ``sent_at`` gives end-to-end broadcast latency.
Each worker keeps ONE subscriber connection, owned by a listener task, and subscribes to a room
while it holds a local socket in it. Frames are published already encoded and
handed to the hub unchanged, so a message is serialised once in the whole cluster.

Outages: the listener notices a broken connection, reconnects with capped exponential backoff and
jitter, and re-subscribes to every room it still needs, without a worker restart. While Redis is
down ``publish`` raises ``BrokerUnavailable`` and ``ping`` is False, so ``/readyz`` turns 503; the
refused frame (its message is stored) is published again once Redis takes publishes. Commands are
retried once on a dropped connection (``redis_client``), so a Redis restart costs no publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from typing import Any

from pydantic import ValidationError
from redis.exceptions import RedisError

from chatserver.broker.base import Broker, BrokerEventHandler, BrokerUnavailable, RoomFrame
from chatserver.protocol import MembershipChange
from chatserver.redis_client import command_client, subscriber_client

log = logging.getLogger(__name__)

_SOCKET_TIMEOUT_SECONDS = 3.0
_SUBSCRIBE_CONFIRM_SECONDS = 3.0
_POLL_SECONDS = 1.0
_BACKOFF_FIRST_SECONDS = 0.1
_BACKOFF_MAX_SECONDS = 5.0
_REPUBLISH_BACKOFF_MAX_SECONDS = 1.0
MEMBERSHIP_QUEUE_LIMIT = 1000
"""Membership changes received and not yet applied; when full, the listener waits (see ``_queue_membership``)."""
UNPUBLISHED_LIMIT = 1000
"""Frames kept to publish again after Redis refused them (they are stored); beyond it the oldest go."""
# KEYS: the room's counter, its channel. ARGV: the message after the seq. Atomic: numbers follow publish order.
_NUMBERED_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', KEYS[2], seq .. ' ' .. ARGV[1])
return seq
"""


class RedisBroker(Broker):
    """Room and membership channels on one Redis; see the module docstring for the life of a connection."""

    def __init__(self, url: str, prefix: str) -> None:
        self._room_prefix = f"{prefix}room:"
        self._seq_prefix = f"{prefix}seq:"
        self._membership_channel = f"{prefix}membership"
        timeouts = {"socket_timeout": _SOCKET_TIMEOUT_SECONDS, "socket_connect_timeout": 2.0}
        self._client = command_client(url, decode_responses=True, **timeouts)
        self._subscriber = subscriber_client(url, decode_responses=True, **timeouts)
        self._unpublished: deque[tuple[str, RoomFrame]] = deque()
        self._unpublished_waiting = asyncio.Event()
        self._republisher: asyncio.Task[None] | None = None
        self._wanted: set[str] = set()
        self._live: set[str] = set()
        self._confirmations: dict[str, list[asyncio.Future[None]]] = {}
        self._pubsub: Any = None
        self._listening = False
        self._listener: asyncio.Task[None] | None = None
        self._membership_worker: asyncio.Task[None] | None = None
        self._membership_queue: asyncio.Queue[MembershipChange] = asyncio.Queue(MEMBERSHIP_QUEUE_LIMIT)
        self._handler: BrokerEventHandler | None = None
        self._commands = asyncio.Lock()
        self._numbered_publish = self._client.register_script(_NUMBERED_PUBLISH)

    async def start(self, handler: BrokerEventHandler) -> None:
        """Begin listening; does not wait for Redis, so a replica can start during a Redis outage."""
        self._handler = handler
        self._listener = asyncio.create_task(self._listen_forever(), name="redis-listener")
        self._membership_worker = asyncio.create_task(self._apply_memberships(), name="membership-worker")
        self._republisher = asyncio.create_task(self._republish_forever(), name="republisher")

    async def stop(self) -> None:
        for task in (self._listener, self._membership_worker, self._republisher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._drop_pubsub()
        await self._client.aclose()
        await self._subscriber.aclose()

    async def subscribe(self, room: str) -> None:
        """Subscribe and wait for Redis to confirm, so a socket told ``ready`` misses nothing after it."""
        self._wanted.add(room)
        channel = self._room_prefix + room
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(channel, []).append(confirmed)
        await self._sync_channel(room)
        try:
            await asyncio.wait_for(confirmed, _SUBSCRIBE_CONFIRM_SECONDS)
        except TimeoutError:
            log.warning("subscription not confirmed yet; the listener re-subscribes on reconnect", extra={"room": room})
        finally:
            waiting = self._confirmations.get(channel, [])
            if confirmed in waiting:
                waiting.remove(confirmed)

    async def unsubscribe(self, room: str) -> None:
        self._wanted.discard(room)
        await self._sync_channel(room)

    async def publish(self, room: str, frame: RoomFrame) -> None:
        """Publish now; if Redis refuses, raise and keep the frame to publish again once Redis takes it."""
        try:
            await self._publish_numbered(room, frame)
        except (RedisError, OSError) as error:
            self._keep_unpublished(room, frame)
            raise BrokerUnavailable(f"Redis publish failed: {error}") from error

    async def _publish_numbered(self, room: str, frame: RoomFrame) -> None:
        rest = f"{frame.sent_at:.6f} {frame.message_id} {frame.updated_at}\n{frame.text}"
        await self._numbered_publish(keys=[self._seq_prefix + room, self._room_prefix + room], args=[rest])

    def _keep_unpublished(self, room: str, frame: RoomFrame) -> None:
        if len(self._unpublished) >= UNPUBLISHED_LIMIT:
            dropped_room, _ = self._unpublished.popleft()
            log.warning("too many unpublished frames; the oldest is left to catch-up", extra={"room": dropped_room})
        self._unpublished.append((room, frame))
        self._unpublished_waiting.set()

    async def _republish_forever(self) -> None:
        """Publish refused frames again, oldest first: the message is stored, so it must still go out live.

        Receivers skip a version they already delivered, so a frame Redis took after all (a timeout)
        is not shown twice.
        """
        failures = 0
        while True:
            await self._unpublished_waiting.wait()
            while self._unpublished:
                oldest = self._unpublished[0]
                try:
                    await self._publish_numbered(*oldest)
                except (RedisError, OSError):
                    await asyncio.sleep(_backoff_seconds(failures, _REPUBLISH_BACKOFF_MAX_SECONDS))
                    failures += 1
                    continue
                failures = 0
                if self._unpublished and self._unpublished[0] is oldest:
                    self._unpublished.popleft()
            self._unpublished_waiting.clear()

    async def publish_membership(self, change: MembershipChange) -> None:
        await self._publish(self._membership_channel, change.model_dump_json())

    async def ping(self) -> bool:
        if not self._listening:
            return False
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    @property
    def membership_backlog(self) -> int:
        """Membership changes received and not yet applied (at most ``MEMBERSHIP_QUEUE_LIMIT``)."""
        return self._membership_queue.qsize()

    async def close_client(self) -> None:
        """For one-shot publishers (the CLI) that never started a listener."""
        await self._client.aclose()
        await self._subscriber.aclose()

    async def _publish(self, channel: str, text: str) -> None:
        try:
            await self._client.publish(channel, text)
        except (RedisError, OSError) as error:
            raise BrokerUnavailable(f"Redis publish failed: {error}") from error

    async def _sync_channel(self, room: str) -> None:
        """Make the live subscription match ``_wanted`` for one room, whatever order calls came in.

        Commands go out one at a time under a lock and Redis applies them in order, so ``_live``
        (what was last sent for each room) is what the server holds for this connection.
        """
        async with self._commands:
            pubsub = self._pubsub
            if pubsub is None:
                return  # the listener subscribes to everything wanted when it (re)connects
            channel = self._room_prefix + room
            try:
                if room in self._wanted and room not in self._live:
                    await pubsub.subscribe(channel)
                    self._live.add(room)
                elif room not in self._wanted and room in self._live:
                    await pubsub.unsubscribe(channel)
                    self._live.discard(room)
            except (RedisError, OSError):
                log.warning("subscription change failed; the listener will reconnect", extra={"room": room})

    async def _listen_forever(self) -> None:
        failures = 0
        while True:
            try:
                await self._connect()
                failures = 0
                await self._read_messages()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as error:
                self._listening = False
                await self._drop_pubsub()
                delay = _backoff_seconds(failures, _BACKOFF_MAX_SECONDS)
                failures += 1
                log.warning("redis subscriber lost (%s); reconnecting in %.2fs", error, delay)
                await asyncio.sleep(delay)

    async def _connect(self) -> None:
        """A fresh subscriber connection with every channel this worker still needs."""
        async with self._commands:
            pubsub = self._subscriber.pubsub()
            channels = [self._membership_channel, *(self._room_prefix + room for room in self._wanted)]
            await pubsub.subscribe(*channels)
            self._pubsub = pubsub
            self._live = set(self._wanted)
        self._listening = True
        log.info("redis subscriber connected", extra={"channels": len(channels)})
        if self._handler is not None:
            self._handler.handle_resubscribed()

    async def _read_messages(self) -> None:
        while True:
            message = await self._pubsub.get_message(timeout=_POLL_SECONDS)
            if message is None:
                continue
            if message["type"] == "message" and message["channel"] == self._membership_channel:
                await self._queue_membership(message["data"])
                continue
            try:
                self._dispatch(message)
            except Exception:  # one bad message (a foreign publisher, say) must not end delivery for all
                log.exception(
                    "dropping a pub/sub message that could not be dispatched", extra={"channel": message["channel"]}
                )

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == "subscribe":
            for confirmed in self._confirmations.pop(channel, []):
                if not confirmed.done():
                    confirmed.set_result(None)
        elif kind == "message" and channel.startswith(self._room_prefix) and self._handler is not None:
            header, _, text = message["data"].partition("\n")
            seq, sent_at, message_id, updated_at = header.split(" ")
            frame = RoomFrame(text, message_id, updated_at, float(sent_at), int(seq))
            self._handler.handle_room_frame(channel[len(self._room_prefix) :], frame)

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

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


def _backoff_seconds(failures: int, cap: float) -> float:
    """Capped exponential backoff with jitter, so replicas do not retry in step."""
    return min(cap, _BACKOFF_FIRST_SECONDS * 2**failures) * random.uniform(0.5, 1.0)
