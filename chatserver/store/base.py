"""The storage interface every message store implements, and the records it deals in.

The chat use cases talk only to ``MessageStore``; the embedded ``MemoryStore`` and the Beanie-backed
``MongoStore`` are interchangeable behind it and share one contract test suite.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from chatserver.protocol.vocabulary import RoomKey


class StoreUnavailable(Exception):
    """The store could not be reached or refused the operation; nothing was changed by this call."""


@dataclass(frozen=True, slots=True)
class StoredReaction:
    player_name: str
    emoji: str
    sender_id: str


@dataclass(frozen=True, slots=True)
class EventDraft:
    """The event of one change, as the use case describes it before the store has stamped the change.

    The store keeps it in the changed message's outbox, in the same write as the change, until it is on
    the event stream: so a change that was stored always has its event, whatever dies in between.
    ``detail`` holds what the event type carries (``emoji``, ``feeling``, ``responseType``).
    """

    id: str
    type: str
    player_id: str
    detail: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An outbox entry: the draft and the stamp of its change (``createdAt``, or the reaction's ``updatedAt``)."""

    draft: EventDraft
    at: datetime


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as stored; ``sender_name``/``sender_avatar`` are the sender's profile when it was written."""

    id: str
    room: RoomKey
    sender_id: str
    sender_name: str | None
    sender_avatar: dict[str, Any] | None
    content: str
    feeling: str | None
    reactions: tuple[StoredReaction, ...]
    created_at: datetime
    updated_at: datetime
    response_type: str | None = None
    edited_at: datetime | None = None
    deleted_at: datetime | None = None  # set: a tombstone, its content and reactions removed
    pending: tuple[PendingEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageTarget:
    """The message an edit or a deletion is for: ``room``/``sender_id`` ``None`` match any (a moderator's)."""

    message_id: str
    room: RoomKey | None = None
    sender_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewMessage:
    """What the chat use case asks the store to keep; the store assigns id and timestamps."""

    room: RoomKey
    sender_id: str
    sender_name: str
    sender_avatar: dict[str, Any] | None
    content: str
    feeling: str | None
    response_type: str | None = None


@dataclass(frozen=True, slots=True)
class ReactionChange:
    """Set (``emoji``) or remove (``emoji is None``) one player's reaction on one message."""

    message_id: str
    sender_id: str
    player_name: str
    emoji: str | None


@dataclass(frozen=True, slots=True)
class HistorySlice:
    """One page of a room, newest first, and how many messages the room holds in all."""

    messages: list[StoredMessage]
    total: int


@dataclass(frozen=True, slots=True)
class ChangeSlice:
    """Messages of a room changed (created or reacted to) after a moment, oldest change first.

    ``complete`` is False when more changed than the limit asked for; the newest changes are kept.
    """

    messages: list[StoredMessage]
    complete: bool


class ChangeClock:
    """Stamps for ``createdAt``/``updatedAt``: UTC cut to milliseconds (what MongoDB keeps, so both stores
    agree), and each later than the one before, so no two changes stored by this process share a time.

    A resuming client asks for the changes after the newest time it saw; two changes in one millisecond
    would make that ambiguous, and the one it had not seen would be lost.
    """

    def __init__(self) -> None:
        self._last: datetime | None = None

    def now(self, after: datetime | None = None) -> datetime:
        """A fresh stamp, also later than ``after`` when given (a document's own, newer ``updatedAt``)."""
        now = datetime.now(UTC)
        stamp = now.replace(microsecond=now.microsecond // 1000 * 1000)
        for floor in (self._last, after):
            if floor is not None and stamp <= floor:
                stamp = floor + timedelta(milliseconds=1)
        self._last = stamp
        return stamp


def apply_reaction(reactions: tuple[StoredReaction, ...], change: ReactionChange) -> tuple[StoredReaction, ...]:
    """The game's reaction rule, keyed by player id: replace moves to the end, same emoji keeps its place."""
    mine = next((r for r in reactions if r.sender_id == change.sender_id), None)
    if change.emoji is not None and mine is not None and mine.emoji == change.emoji:
        return reactions
    others = tuple(r for r in reactions if r.sender_id != change.sender_id)
    if change.emoji is None:
        return others
    return (*others, StoredReaction(change.player_name, change.emoji, change.sender_id))


def retention_cutoff(retention: timedelta | None) -> datetime | None:
    """Messages created at or before this moment are past retention: never shown, never changed."""
    return None if retention is None else datetime.now(UTC) - retention


class MessageStore(ABC):
    """Where messages live. Every method raises ``StoreUnavailable`` when the backend cannot answer.

    With a retention, every method behaves as if messages past it were already gone.
    """

    durable: bool = True

    async def open(self) -> None:
        """Connect and prepare (indexes); called once from the app's lifespan."""

    async def close(self) -> None:
        """Release connections; called once on shutdown."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when the store answers right now (for ``/readyz``)."""

    @abstractmethod
    async def add(self, new: NewMessage, event: EventDraft | None = None) -> StoredMessage:
        """Store a new message, ``event`` (if any) in its outbox, and return it with its id and timestamps."""

    @abstractmethod
    async def react(
        self, room: RoomKey, change: ReactionChange, event: EventDraft | None = None
    ) -> StoredMessage | None:
        """Apply ``change`` (and queue ``event``) atomically on a live message of ``room``; ``None`` if none."""

    @abstractmethod
    async def get(self, target: MessageTarget) -> StoredMessage | None:
        """The live message ``target`` names; ``None`` if there is none (or it is a tombstone)."""

    @abstractmethod
    async def edit(self, target: MessageTarget, content: str, event: EventDraft | None = None) -> StoredMessage | None:
        """Replace the content of a live message (and queue ``event``) atomically, setting ``edited_at``;
        ``None`` if none matches."""

    @abstractmethod
    async def delete(self, target: MessageTarget, event: EventDraft | None = None) -> StoredMessage | None:
        """Make a live message a tombstone atomically (content, feeling and reactions removed, ``deleted_at`` set,
        ``event`` queued) and return it; ``None`` if no live message matches. Tombstones leave history and
        reactions."""

    @abstractmethod
    async def events_sent(self, message_id: str, event_ids: list[str]) -> None:
        """Take these events out of the message's outbox: they are on the event stream."""

    @abstractmethod
    async def pending_events(self, older_than: datetime, limit: int) -> list[StoredMessage]:
        """Up to ``limit`` messages holding an outbox entry stamped before ``older_than``, oldest entry first."""

    @abstractmethod
    async def page(self, room: RoomKey, limit: int, offset: int) -> HistorySlice:
        """Live messages of ``room`` newest first, skipping ``offset`` newer ones; ``total`` counts live ones."""

    @abstractmethod
    async def changes_since(self, room: RoomKey, since: datetime, limit: int) -> ChangeSlice:
        """Messages of ``room`` (tombstones too) whose ``updated_at`` is after ``since``, by ``(updated_at, id)``;
        at most ``limit``."""

    @abstractmethod
    async def page_before(self, room: RoomKey, before_id: str, limit: int) -> HistorySlice | None:
        """Up to ``limit`` live messages of ``room`` older than ``before_id`` (which may be a tombstone);
        ``None`` if that id is not in the room."""
