"""The receive side, between broker and hub: each room's frames once each, in order, lost ones repaired.

Redis pub/sub drops whatever is published while a subscriber is disconnected or too far behind. The
store is the source of truth, so a room that may have lost frames *catches up* from it: a ``seq``
that skips ahead, or a re-established subscription, holds the room's live frames while the store's
changes since the newest one delivered here (less a margin for clocks and in-flight writes) go out,
then the held frames, each version of a message once (versions are told apart by ``updatedAt``,
which every stored change advances).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from chatserver import metrics
from chatserver.broker.base import Broker, BrokerEventHandler, MembershipHandler, RoomFrame, RoomFrameHandler
from chatserver.frames import iso_millis
from chatserver.protocol import MembershipChange
from chatserver.protocol.vocabulary import RoomKey
from chatserver.store.base import StoreUnavailable

log = logging.getLogger(__name__)

CATCH_UP_MARGIN = timedelta(seconds=2)
"""How far before the newest delivered change a catch-up reads: covers replicas' clock skew and
writes stored before, but published after, the newest frame seen."""
CATCH_UP_LIMIT = 1000
CATCH_UPS_AT_ONCE = 8
"""Store reads in flight for catch-ups: a Redis reconnect makes every followed room catch up at once."""
REMEMBERED_PER_ROOM = 1024
"""Versions delivered per room kept to skip repeats; a catch-up reads at most a few seconds back."""


@dataclass(frozen=True)
class Changes:
    """A room's changes as broadcast frames, oldest first; ``complete`` is False when some were left out."""

    frames: list[RoomFrame]
    complete: bool


class ChangeReader(Protocol):
    """The one thing catch-up needs from the use cases: a room's changes read back from the store."""

    async def changes(self, room: RoomKey, since: datetime, limit: int, known: Container[str] = ...) -> Changes:
        """Frames for the changes after ``since`` (``known``: ids already shown); raises ``StoreUnavailable``."""
        ...


@dataclass
class _RoomFeed:
    """What this worker delivered in one room, and the frames held while the room catches up."""

    followed_at: str
    last_seq: int | None = None
    newest: str | None = None
    delivered: OrderedDict[str, str] = field(default_factory=OrderedDict)
    held: list[RoomFrame] | None = None
    stale: bool = False  # the subscription broke again while a catch-up was reading: read once more

    def is_new(self, message_id: str, updated_at: str) -> bool:
        """Whether this version of the message is newer than any delivered here (ISO texts sort as times)."""
        return self.delivered.get(message_id, "") < updated_at

    def remember(self, message_id: str, updated_at: str) -> None:
        self.delivered[message_id] = updated_at
        self.delivered.move_to_end(message_id)
        if len(self.delivered) > REMEMBERED_PER_ROOM:
            self.delivered.popitem(last=False)
        self.newest = max(self.newest or updated_at, updated_at)

    def catch_up_from(self) -> datetime:
        """The margin before the newest delivered change, never before this worker followed the room:
        older changes were not this worker's to deliver (its sockets joined after them)."""
        followed = datetime.fromisoformat(self.followed_at)
        if self.newest is None:
            return followed
        return max(datetime.fromisoformat(self.newest) - CATCH_UP_MARGIN, followed)


class Delivery(BrokerEventHandler):
    """The broker's one handler: room frames to the hub in order and repaired, membership changes on.

    The hub follows rooms through it (``subscribe``/``unsubscribe``), so it knows which rooms to
    repair and since when. It owns the broker's lifecycle: ``start`` registers it, ``stop`` stops both.
    """

    def __init__(self, broker: Broker, reader: ChangeReader) -> None:
        self._broker = broker
        self._reader = reader
        self._feeds: dict[str, _RoomFeed] = {}
        self._to_hub: RoomFrameHandler | None = None
        self._on_membership: MembershipHandler | None = None
        self._catch_ups: set[asyncio.Task[None]] = set()
        self._store_reads = asyncio.Semaphore(CATCH_UPS_AT_ONCE)

    async def start(self, to_hub: RoomFrameHandler, on_membership: MembershipHandler) -> None:
        """Register with the broker: from now on frames go to ``to_hub`` and changes to ``on_membership``."""
        self._to_hub, self._on_membership = to_hub, on_membership
        await self._broker.start(self)

    async def stop(self) -> None:
        for task in list(self._catch_ups):
            task.cancel()
        await asyncio.gather(*self._catch_ups, return_exceptions=True)
        await self._broker.stop()

    async def subscribe(self, room: str) -> None:
        # A millisecond back: stamps are cut to milliseconds, and a change stamped in the very
        # millisecond the room was followed may have been stored after it.
        followed_at = iso_millis(datetime.now(UTC) - timedelta(milliseconds=1))
        self._feeds.setdefault(room, _RoomFeed(followed_at=followed_at))
        await self._broker.subscribe(room)

    async def unsubscribe(self, room: str) -> None:
        self._feeds.pop(room, None)
        await self._broker.unsubscribe(room)

    def handle_room_frame(self, room: str, frame: RoomFrame) -> None:
        """Deliver in sequence, or hold the frame while the room catches up."""
        feed = self._feeds.get(room)
        if feed is None:
            return
        if feed.held is not None:
            feed.held.append(frame)
        elif feed.last_seq is not None and frame.seq > feed.last_seq + 1:
            log.warning("frames lost in a room; catching up from the store", extra={"room": room})
            feed.held = [frame]
            self._start_catch_up(room, feed)
        else:
            feed.last_seq = frame.seq  # also after a counter reset (a Redis restart without persistence)
            self._deliver(room, feed, frame)

    async def handle_membership(self, change: MembershipChange) -> None:
        if self._on_membership is not None:
            await self._on_membership(change)

    def handle_resubscribed(self) -> None:
        """Anything may have been published while the subscription was down: every room catches up
        (a room already catching up reads the store again once its current read is done)."""
        for room, feed in self._feeds.items():
            if feed.held is None:
                feed.held = []
                self._start_catch_up(room, feed)
            else:
                feed.stale = True

    def _deliver(self, room: str, feed: _RoomFeed, frame: RoomFrame) -> None:
        """Hand a frame to the hub unless this version of its message was delivered already: a catch-up
        may carry a change whose own frame is still on its way (stored, not yet published)."""
        if not feed.is_new(frame.message_id, frame.updated_at):
            return
        feed.remember(frame.message_id, frame.updated_at)
        if self._to_hub is not None:
            self._to_hub(room, frame)

    def _start_catch_up(self, room: str, feed: _RoomFeed) -> None:
        task = asyncio.create_task(self._catch_up(room, feed), name=f"catch-up-{room}")
        self._catch_ups.add(task)
        task.add_done_callback(self._catch_ups.discard)

    async def _catch_up(self, room: str, feed: _RoomFeed) -> None:
        """Deliver what the store has that this room missed, then the held frames, then go live again.

        Whatever happens, the held frames go out at the end: a room must never stay held. A feed that
        was replaced meanwhile (every local socket left and one came back) is left alone: its frames
        belong to the new feed's sockets, which followed the room afresh.
        """
        try:
            while True:
                feed.stale = False
                await self._read_missed(room, feed)
                if not feed.stale:
                    break
        finally:
            held, feed.held, feed.last_seq = feed.held or [], None, None
            if self._feeds.get(room) is feed:
                for frame in sorted(held, key=lambda f: f.seq):
                    self.handle_room_frame(room, frame)

    async def _read_missed(self, room: str, feed: _RoomFeed) -> None:
        try:
            async with self._store_reads:
                changes = await self._reader.changes(
                    RoomKey.from_name(room), feed.catch_up_from(), CATCH_UP_LIMIT, known=feed.delivered.keys()
                )
        except StoreUnavailable:
            log.warning("catch-up could not read the store; frames lost meanwhile stay lost", extra={"room": room})
            metrics.CATCH_UPS.labels("failed").inc()
            return
        except Exception:
            log.exception("catch-up failed; frames lost meanwhile stay lost", extra={"room": room})
            metrics.CATCH_UPS.labels("failed").inc()
            return
        if self._feeds.get(room) is not feed:
            return
        if not changes.complete:
            log.warning(
                "catch-up found more than %d changes; the oldest stay lost", CATCH_UP_LIMIT, extra={"room": room}
            )
        for frame in changes.frames:
            self._deliver(room, feed, frame)
        metrics.CATCH_UPS.labels("done").inc()
