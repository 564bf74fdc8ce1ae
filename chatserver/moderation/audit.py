"""The one place every moderation action is recorded: a log line with who did it, and its event.

Reports, mutes, unmutes and moderators' deletions all pass through ``Audit.record``, named by the
event type the chat event stream gives them. A deletion's event travels with the tombstone through
the outbox (at least once); reports and mutes change no message, so their events are appended here
directly: at most once, lost if the event stream cannot be reached at that moment (logged).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bson import ObjectId

from chatserver.events.sinks import EventSink, EventsUnavailable
from chatserver.frames import iso_millis

log = logging.getLogger(__name__)


class AuditAction(StrEnum):
    """A moderation action, spelled as its event type."""

    MESSAGE_REPORTED = "message.reported"
    MESSAGE_DELETED = "message.deleted"
    PLAYER_MUTED = "player.muted"
    PLAYER_UNMUTED = "player.unmuted"


_LOG_MESSAGES = {
    AuditAction.MESSAGE_REPORTED: "message reported",
    AuditAction.MESSAGE_DELETED: "moderator deleted a message",
    AuditAction.PLAYER_MUTED: "moderator muted a player",
    AuditAction.PLAYER_UNMUTED: "moderator unmuted a player",
}


_DIRECT_EVENTS = {AuditAction.MESSAGE_REPORTED, AuditAction.PLAYER_MUTED, AuditAction.PLAYER_UNMUTED}


class Audit:
    """Records moderation actions; ``fields`` name the players (``player_id``, ``moderator``) and the message."""

    def __init__(self, events: EventSink | None = None) -> None:
        self._events = events

    async def record(self, action: AuditAction, **fields: Any) -> None:
        log.info(_LOG_MESSAGES[action], extra={"action": action.value, **fields})
        if self._events is None or action not in _DIRECT_EVENTS:
            return
        event = {
            "id": str(ObjectId()),
            "type": action.value,
            "at": iso_millis(datetime.now(UTC)),
            **{key: value for key, value in fields.items() if value is not None or key == "clan_id"},  # null: global
        }
        try:
            await self._events.append([event])
        except EventsUnavailable:
            log.warning("a moderation event could not reach the event stream", extra={"action": action.value})
