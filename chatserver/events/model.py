"""What an event says: its types, the draft a use case writes, and the JSON object consumers read.

An event is ``{"id", "type", "at", "chat", "clan_id", "player_id", "message_id", ...}`` plus what its type
carries (``feeling``, ``emoji``, ``responseType``). It does not carry ``content``: the stream outlives
retention and is read by other services, so the text stays in the store, where retention deletes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from bson import ObjectId

from chatserver.frames import iso_millis
from chatserver.store.base import EventDraft, PendingEvent, StoredMessage


class EventType(StrEnum):
    MESSAGE_CREATED = "message.created"
    MESSAGE_EDITED = "message.edited"
    MESSAGE_DELETED = "message.deleted"
    REACTION_SET = "reaction.set"
    REACTION_REMOVED = "reaction.removed"
    MESSAGE_REPORTED = "message.reported"
    PLAYER_MUTED = "player.muted"
    PLAYER_UNMUTED = "player.unmuted"


def draft(type: EventType, player_id: str, **detail: str | None) -> EventDraft:
    """A new event with a fresh id (an ObjectId: unique, and sorts by when it was made); ``None`` details dropped."""
    kept = {key: value for key, value in detail.items() if value is not None}
    return EventDraft(str(ObjectId()), type.value, player_id, kept)


def message_event(message: StoredMessage, pending: PendingEvent) -> dict[str, Any]:
    """The event object of one outbox entry of ``message``; the same however often it is rebuilt."""
    event: dict[str, Any] = {
        "id": pending.draft.id,
        "type": pending.draft.type,
        "at": iso_millis(pending.at),
        "chat": message.room.type.value,
        "clan_id": message.room.clan_id,
        "player_id": pending.draft.player_id,
        "message_id": message.id,
    }
    event.update(pending.draft.detail)
    return event


def encode(event: Mapping[str, Any]) -> str:
    """The text of a stream entry's ``data`` field: compact JSON, Unicode kept."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))
