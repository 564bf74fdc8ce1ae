"""Beanie documents in the game's own ``ChatMessage`` layout, so the old backend and this service share data.

The layout and what old-backend documents look like: docs/architecture.md, "Storage layout".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from beanie import Document, PydanticObjectId
from bson import ObjectId
from pydantic import BaseModel, Field, field_validator
from pymongo import ASCENDING, DESCENDING, IndexModel

from chatserver.protocol import ChatType
from chatserver.protocol.vocabulary import AVATAR_PIECES, LEGACY_PIECE_COLOR, RoomKey, is_object_id
from chatserver.store.base import EventDraft, NewMessage, PendingEvent, StoredMessage, StoredReaction

LEGACY_REACTION_SENDER = "legacy_system"
"""What the old backend reads back as ``sender_id`` for reactions written before it stored one."""


def as_object_id(text: str) -> ObjectId | None:
    """``text`` as an ObjectId when it is one spelled the canonical way (24 lower-case hex), else ``None``.

    Stricter than ``ObjectId.is_valid`` on purpose: an upper-case spelling would come back lower-case
    and no longer equal the id the caller holds, which the in-memory store would not do either.
    """
    return ObjectId(text) if is_object_id(text) and text == text.lower() else None


def as_utc(value: datetime) -> datetime:
    """PyMongo hands back naive datetimes that mean UTC; make that explicit."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ReactionEntry(BaseModel):
    """One element of ``reactions``; a legacy element's own ``_id`` is ignored (and kept in the database)."""

    playerName: str
    emoji: str
    sender_id: str = LEGACY_REACTION_SENDER


class OutboxEntry(BaseModel):
    """An event waiting for the event stream, written in the same update as its change (our addition)."""

    id: str
    type: str
    player_id: str
    at: datetime
    detail: dict[str, str] = Field(default_factory=dict)

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return as_utc(value)

    @classmethod
    def of(cls, event: EventDraft, at: datetime) -> OutboxEntry:
        return cls(id=event.id, type=event.type, player_id=event.player_id, at=at, detail=dict(event.detail))

    def to_pending(self) -> PendingEvent:
        return PendingEvent(EventDraft(self.id, self.type, self.player_id, self.detail), self.at)


class SenderProfile(BaseModel):
    """The sender's name and avatar when the message was written (our addition to the game's layout)."""

    name: str | None = None
    avatar: dict[str, Any] | None = None


class ChatMessageDocument(Document):
    """One message in the game's ``ChatMessage`` collection."""

    type: ChatType
    sender_id: PydanticObjectId | str
    content: str
    feeling: str | None = None
    responseType: str | None = None
    clan_id: str | None = None
    reactions: list[ReactionEntry] = Field(default_factory=list)
    createdAt: datetime
    updatedAt: datetime
    senderProfile: SenderProfile | None = None
    editedAt: datetime | None = None
    deletedAt: datetime | None = None
    outbox: list[OutboxEntry] | None = None

    class Settings:
        name = "ChatMessage"
        # Like mongoose: an unset optional field (``feeling``, ``clan_id`` of a global message) is absent,
        # not ``null``. The same applies inside ``senderProfile``: no avatar means no ``avatar`` key.
        keep_nulls = False
        # The game's index is (clan_id, createdAt desc); ``_id`` is appended as the tie-breaker of our sort
        # (createdAt desc, _id desc) so that a page and a keyset page are read in index order, with no
        # in-memory sort of the room's older messages. Same prefix, so every query the game's index serves
        # this one serves too.
        # The two updatedAt indexes serve resumes and replica catch-up ("what changed in this room since t").
        # The outbox index holds only messages with an event not yet on the stream, for the repair sweep.
        # No index on createdAt alone here: the retention TTL index is the store's, made at start-up to fit
        # the game's own (see ``retention_index``).
        indexes = [
            IndexModel([("clan_id", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("type", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("clan_id", ASCENDING), ("updatedAt", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("type", ASCENDING), ("updatedAt", DESCENDING), ("_id", DESCENDING)]),
            IndexModel(
                [("outbox.at", ASCENDING)], name="outbox_at", partialFilterExpression={"outbox.at": {"$exists": True}}
            ),
        ]

    @field_validator("createdAt", "updatedAt")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return as_utc(value)

    @field_validator("editedAt", "deletedAt")
    @classmethod
    def _aware_when_set(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    @classmethod
    def from_new(cls, new: NewMessage, now: datetime, event: EventDraft | None = None) -> ChatMessageDocument:
        """The document for a new message; ``sender_id`` is an ObjectId when the player id is one."""
        return cls(
            type=new.room.type,
            sender_id=as_object_id(new.sender_id) or new.sender_id,
            content=new.content,
            feeling=new.feeling,
            responseType=new.response_type,
            clan_id=new.room.clan_id if new.room.type is ChatType.CLAN else None,
            reactions=[],
            createdAt=now,
            updatedAt=now,
            senderProfile=SenderProfile(name=new.sender_name, avatar=new.sender_avatar),
            outbox=None if event is None else [OutboxEntry.of(event, now)],
        )

    def to_stored(self) -> StoredMessage:
        """The store-neutral record the chat use cases deal in."""
        profile = self.senderProfile or SenderProfile()
        return StoredMessage(
            id=str(self.id),
            room=RoomKey(self.type, self.clan_id if self.type is ChatType.CLAN else None),
            sender_id=str(self.sender_id),
            sender_name=profile.name,
            sender_avatar=profile.avatar,
            content=self.content,
            feeling=self.feeling,
            response_type=self.responseType,
            reactions=tuple(StoredReaction(r.playerName, r.emoji, r.sender_id) for r in self.reactions),
            created_at=self.createdAt,
            updated_at=self.updatedAt,
            edited_at=self.editedAt,
            deleted_at=self.deletedAt,
            pending=tuple(entry.to_pending() for entry in self.outbox or ()),
        )


def wrap_legacy_avatar(avatar: dict[str, Any]) -> dict[str, Any]:
    """The game's ``wrapLegacyPiece`` on every piece: a bare number ``n`` becomes ``{id: n, color: white}``.

    Pieces were plain numbers before the game's avatar refactor, and such players still exist.
    """
    wrapped = dict(avatar)
    for piece in AVATAR_PIECES:
        value = wrapped.get(piece)
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = int(value) if isinstance(value, float) and value.is_integer() else value
            wrapped[piece] = {"id": number, "color": LEGACY_PIECE_COLOR}
    return wrapped


class PlayerDocument(Document):
    """The fields of the game's ``Player`` collection that chat needs; read-only."""

    name: str
    clan_id: PydanticObjectId | str | None = None
    avatar: dict[str, Any] | None = None

    class Settings:
        name = "Player"

    @field_validator("avatar")
    @classmethod
    def _wrap_legacy_pieces(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else wrap_legacy_avatar(value)
