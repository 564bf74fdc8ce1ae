"""Outbound frames encoded once: stored records become protocol models and then one JSON text.

A broadcast is serialised here a single time and the same text goes to every socket on every
worker, so fan-out does no per-socket JSON work.
"""

from __future__ import annotations

import json
from datetime import datetime

from chatserver.players import Player
from chatserver.protocol import (
    BroadcastEvent,
    BroadcastFrame,
    ChatType,
    ClanChange,
    MembershipFrame,
    Message,
    Reaction,
    ReadyFrame,
    Sender,
    WrappedBroadcastFrame,
)
from chatserver.settings import Envelope
from chatserver.store.base import StoredMessage

READY_TEXT = ReadyFrame().model_dump_json()


def ready_text(recovered: bool | None) -> str:
    """``ready``; with ``recovered`` when the socket resumed (``?since=``)."""
    return READY_TEXT if recovered is None else ReadyFrame(recovered=recovered).model_dump_json()


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
        type=message.room.type,
        reactions=[Reaction(playerName=r.player_name, emoji=r.emoji, sender_id=r.sender_id) for r in message.reactions],
        createdAt=iso_millis(message.created_at),
        updatedAt=iso_millis(message.updated_at),
    )


def broadcast_text(event: BroadcastEvent, message: Message, envelope: Envelope) -> str:
    """The one text every socket of the room receives for this change."""
    frame = BroadcastFrame(chat=ChatType(message.type), event=event, message=message)
    if envelope is Envelope.WRAPPED:
        return WrappedBroadcastFrame(message=frame).model_dump_json(by_alias=True)
    return frame.model_dump_json(by_alias=True)


def change_of(text: str) -> tuple[str, str] | None:
    """``(message id, updatedAt)`` of a broadcast text (plain or wrapped); ``None`` for any other frame.

    Parses the text: only for the few frames held while a socket resumes or a room catches up.
    """
    frame = json.loads(text)
    inner = frame.get("message")
    if isinstance(inner, dict) and "chat" in inner:  # CHAT_ENVELOPE=wrapped
        inner = inner.get("message")
    if not isinstance(inner, dict) or "updatedAt" not in inner:
        return None
    return inner["_id"], inner["updatedAt"]


def membership_text(joined: bool, clan_id: str) -> str:
    event = "clanJoined" if joined else "clanLeft"
    return MembershipFrame(event=event, data=ClanChange(clan_id=clan_id)).model_dump_json()
