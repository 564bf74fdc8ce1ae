"""The one place every moderation action is recorded: a log line with who did it, per action.

Reports, mutes, unmutes and moderators' deletions all pass through ``Audit.record``, named by the
event type the chat event stream gives them, so the stream can be fed from this one hook.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

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


class Audit:
    """Records moderation actions; ``fields`` name the players (``player_id``, ``moderator``) and the message."""

    async def record(self, action: AuditAction, **fields: Any) -> None:
        log.info(_LOG_MESSAGES[action], extra={"action": action.value, **fields})
