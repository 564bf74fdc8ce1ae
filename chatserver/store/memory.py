"""The embedded store: messages in this process's memory, indexed per room, bounded, not durable.

Ids are ObjectIds made in this process, so they increase with time and their hex spellings sort in
creation order: each room keeps a sorted list of ids, and a history page or a cursor lookup is a
slice or a bisection, never a scan. When the store is full the oldest message of all is dropped, and
with a retention every call first drops the messages past it (oldest first, so that is O(dropped)).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import deque
from datetime import datetime, timedelta

from bson import ObjectId

from chatserver.protocol.vocabulary import RoomKey
from chatserver.store.base import (
    ChangeClock,
    ChangeSlice,
    EventDraft,
    HistorySlice,
    MessageStore,
    MessageTarget,
    NewMessage,
    PendingEvent,
    ReactionChange,
    StoredMessage,
    apply_reaction,
    retention_cutoff,
)

_COMPACT_AFTER = 1024
_AFTER_EVERY_ID = "~"  # sorts after every hex id: (t, _AFTER_EVERY_ID) is past every change at t

ChangeKey = tuple[datetime, str]


class _RoomIndex:
    """Ids of one room in creation order (dropped ids sit before ``head`` until the list is compacted),
    and ``changes``: ``(updated_at, id)`` of every live message, sorted, for resumes."""

    __slots__ = ("ids", "head", "changes")

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.head = 0
        self.changes: list[ChangeKey] = []

    def changed(self, old: ChangeKey | None, new: ChangeKey | None) -> None:
        """Move a message's change key (``None``: it was not there / it is gone)."""
        if old is not None:
            del self.changes[bisect.bisect_left(self.changes, old)]
        if new is not None:
            bisect.insort(self.changes, new)

    def changed_after(self, since: datetime) -> list[ChangeKey]:
        return self.changes[bisect.bisect_right(self.changes, (since, _AFTER_EVERY_ID)) :]

    def __len__(self) -> int:
        return len(self.ids) - self.head

    def drop_oldest(self) -> None:
        self.head += 1
        if self.head >= _COMPACT_AFTER and self.head * 2 >= len(self.ids):
            del self.ids[: self.head]
            self.head = 0

    def newest_first(self, start: int, stop: int) -> list[str]:
        """Ids at live positions ``[start, stop)`` (oldest is 0), newest first."""
        return self.ids[self.head + start : self.head + stop][::-1]

    def position(self, message_id: str) -> int:
        """Live position of ``message_id``, or where it would be (a tombstone's id is no longer listed)."""
        return bisect.bisect_left(self.ids, message_id, lo=self.head) - self.head

    def remove(self, message_id: str) -> None:
        """Take a deleted message out of the live ids (its change key stays, for resumes)."""
        del self.ids[self.head + self.position(message_id)]

    def is_empty(self) -> bool:
        return not len(self) and not self.changes


class MemoryStore(MessageStore):
    """In-process, per-room indexed, holding at most ``max_messages`` (oldest dropped first)."""

    durable = False

    def __init__(self, max_messages: int, retention: timedelta | None = None) -> None:
        self._max_messages = max_messages
        self._retention = retention
        self._with_pending: set[str] = set()
        self._messages: dict[str, StoredMessage] = {}
        self._rooms: dict[RoomKey, _RoomIndex] = {}
        self._arrival: deque[str] = deque()
        self._last_id = ""
        self._clock = ChangeClock()

    async def ping(self) -> bool:
        return True

    async def add(self, new: NewMessage, event: EventDraft | None = None) -> StoredMessage:
        self._prune()
        now = self._clock.now()
        message = StoredMessage(
            id=self._next_id(),
            room=new.room,
            sender_id=new.sender_id,
            sender_name=new.sender_name,
            sender_avatar=new.sender_avatar,
            content=new.content,
            feeling=new.feeling,
            response_type=new.response_type,
            reactions=(),
            created_at=now,
            updated_at=now,
            pending=() if event is None else (PendingEvent(event, now),),
        )
        self._messages[message.id] = message
        if event is not None:
            self._with_pending.add(message.id)
        index = self._rooms.setdefault(new.room, _RoomIndex())
        index.ids.append(message.id)
        index.changed(None, (now, message.id))
        self._arrival.append(message.id)
        while len(self._messages) > self._max_messages:
            self._drop_oldest()
        return message

    async def react(
        self, room: RoomKey, change: ReactionChange, event: EventDraft | None = None
    ) -> StoredMessage | None:
        message = self._live(MessageTarget(change.message_id, room))
        if message is None:
            return None
        now = self._clock.now()
        reactions = apply_reaction(message.reactions, change)
        return self._replace(message, reactions=reactions, updated_at=now, pending=self._queued(message, event, now))

    async def get(self, target: MessageTarget) -> StoredMessage | None:
        return self._live(target)

    async def edit(self, target: MessageTarget, content: str, event: EventDraft | None = None) -> StoredMessage | None:
        message = self._live(target)
        if message is None:
            return None
        now = self._clock.now()
        pending = self._queued(message, event, now)
        return self._replace(message, content=content, edited_at=now, updated_at=now, pending=pending)

    async def delete(self, target: MessageTarget, event: EventDraft | None = None) -> StoredMessage | None:
        message = self._live(target)
        if message is None:
            return None
        self._rooms[message.room].remove(message.id)
        now = self._clock.now()
        pending = self._queued(message, event, now)
        return self._replace(
            message, content="", feeling=None, reactions=(), deleted_at=now, updated_at=now, pending=pending
        )

    def _queued(self, message: StoredMessage, event: EventDraft | None, now: datetime) -> tuple[PendingEvent, ...]:
        """The message's outbox with ``event`` added, stamped with the change it belongs to."""
        if event is None:
            return message.pending
        self._with_pending.add(message.id)
        return (*message.pending, PendingEvent(event, now))

    def _live(self, target: MessageTarget) -> StoredMessage | None:
        self._prune()
        message = self._messages.get(target.message_id)
        if message is None or message.deleted_at is not None:
            return None
        if target.room is not None and message.room != target.room:
            return None
        if target.sender_id is not None and message.sender_id != target.sender_id:
            return None
        return message

    def _replace(self, message: StoredMessage, **changes: object) -> StoredMessage:
        """Store a changed version of ``message`` (a fresh ``updated_at`` unless given) and move its change key."""
        changes.setdefault("updated_at", self._clock.now())
        updated = dataclasses.replace(message, **changes)  # type: ignore[arg-type]
        self._messages[message.id] = updated
        self._rooms[message.room].changed((message.updated_at, message.id), (updated.updated_at, updated.id))
        return updated

    async def events_sent(self, message_id: str, event_ids: list[str]) -> None:
        message = self._messages.get(message_id)
        if message is None:
            return
        pending = tuple(p for p in message.pending if p.draft.id not in event_ids)
        self._messages[message_id] = dataclasses.replace(message, pending=pending)
        if not pending:
            self._with_pending.discard(message_id)

    async def pending_events(self, older_than: datetime, limit: int) -> list[StoredMessage]:
        self._prune()
        due = [m for m in map(self._messages.__getitem__, self._with_pending) if m.pending[0].at < older_than]
        return sorted(due, key=lambda m: m.pending[0].at)[:limit]

    async def changes_since(self, room: RoomKey, since: datetime, limit: int) -> ChangeSlice:
        self._prune()
        index = self._rooms.get(room)
        changed = [] if index is None else index.changed_after(since)
        kept = changed[-limit:] if limit > 0 else []
        return ChangeSlice([self._messages[i] for _, i in kept], complete=len(kept) == len(changed))

    async def page(self, room: RoomKey, limit: int, offset: int) -> HistorySlice:
        self._prune()
        index = self._rooms.get(room)
        if index is None:
            return HistorySlice([], 0)
        stop = max(len(index) - offset, 0)
        ids = index.newest_first(max(stop - limit, 0), stop)
        return HistorySlice([self._messages[i] for i in ids], len(index))

    async def page_before(self, room: RoomKey, before_id: str, limit: int) -> HistorySlice | None:
        self._prune()
        cursor = self._messages.get(before_id)
        index = self._rooms.get(room)
        if cursor is None or cursor.room != room or index is None:
            return None
        stop = index.position(before_id)
        ids = index.newest_first(max(stop - limit, 0), stop)
        return HistorySlice([self._messages[i] for i in ids], len(index))

    def _next_id(self) -> str:
        """A fresh ObjectId above every earlier one (an ObjectId's counter may wrap within a second)."""
        candidate = str(ObjectId())
        if candidate <= self._last_id:
            candidate = f"{int(self._last_id, 16) + 1:024x}"
        self._last_id = candidate
        return candidate

    def _prune(self) -> None:
        """Drop every message past retention; they are the oldest, at the front of ``_arrival``."""
        cutoff = retention_cutoff(self._retention)
        while cutoff is not None and self._arrival and self._messages[self._arrival[0]].created_at <= cutoff:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        oldest = self._messages.pop(self._arrival.popleft())
        self._with_pending.discard(oldest.id)
        index = self._rooms[oldest.room]
        if oldest.deleted_at is None:  # a tombstone's id already left the live ids
            index.drop_oldest()
        index.changed((oldest.updated_at, oldest.id), None)
        if index.is_empty():
            del self._rooms[oldest.room]
