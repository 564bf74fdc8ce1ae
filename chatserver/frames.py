"""Stored records as the protocol's models: the message view every frame and history page shows."""

from __future__ import annotations

from datetime import datetime

from chatserver.players import Player
from chatserver.protocol.models import DeletedMessage, Message, Reaction, Sender
from chatserver.store.base import StoredMessage


def iso_millis(moment: datetime) -> str:
    """``2025-06-23T13:03:15.778Z``: UTC, milliseconds, ``Z``, as the game backend's JSON dates.

    ``isoformat`` then a cut of any UTC offset: half the time of ``strftime``, which was a third of a
    history page's use-case time (50 messages, two dates each).
    """
    return moment.isoformat(timespec="milliseconds")[:23] + "Z"


def sender_of(message: StoredMessage, profiles: dict[str, Player]) -> Sender:
    """The sender's current profile when known, else the profile stored with the message."""
    current = profiles.get(message.sender_id)
    if current is not None:
        return Sender(id=current.id, name=current.name, avatar=current.avatar)
    return Sender(id=message.sender_id, name=message.sender_name or message.sender_id, avatar=message.sender_avatar)


def message_view(message: StoredMessage, sender: Sender) -> Message:
    return Message(
        id=message.id,
        clan_id=message.room.clan_id,
        sender=sender,
        content=message.content,
        feeling=message.feeling,
        responseType=message.response_type,
        type=message.room.type,
        reactions=[Reaction(playerName=r.player_name, emoji=r.emoji, sender_id=r.sender_id) for r in message.reactions],
        createdAt=iso_millis(message.created_at),
        updatedAt=iso_millis(message.updated_at),
        editedAt=None if message.edited_at is None else iso_millis(message.edited_at),
    )


def deleted_view(message: StoredMessage) -> DeletedMessage:
    """A tombstone as its ``deletedMessage`` frame shows it."""
    assert message.deleted_at is not None
    return DeletedMessage(
        id=message.id,
        type=message.room.type,
        clan_id=message.room.clan_id,
        updatedAt=iso_millis(message.updated_at),
        deletedAt=iso_millis(message.deleted_at),
    )
