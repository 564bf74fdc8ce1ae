"""The moderator's use cases: delete any message, mute and unmute players, read mutes and reports.

Every action is recorded (``audit.py``) with the moderator's id (a player id from the JWT, or
``service`` for the service token); the HTTP layer in ``api.py`` only authorises and shapes.
"""

from __future__ import annotations

import logging
import time

from chatserver.chat import ChatService
from chatserver.moderation.audit import Audit, AuditAction
from chatserver.moderation.mutes import MuteRegistry, MutesUnavailable, mute_until
from chatserver.moderation.reports import ReportLog, ReportsUnavailable
from chatserver.protocol import ErrorReason, cut
from chatserver.protocol.errors import ChatError, not_available
from chatserver.protocol.models import Mute, MuteRequest, Report
from chatserver.store.base import MessageTarget

log = logging.getLogger(__name__)


class ModerationService:
    """One per worker; the mutes and reports it reads are every replica's (see ``mutes``/``reports``)."""

    def __init__(self, chat: ChatService, mutes: MuteRegistry, reports: ReportLog, audit: Audit) -> None:
        self._chat = chat
        self._mutes = mutes
        self._reports = reports
        self._audit = audit

    async def delete_message(self, moderator: str, message_id: str) -> None:
        """Tombstone any message, in any room; its ``deletedMessage`` goes to the room on every replica."""
        stored = await self._chat.delete(MessageTarget(message_id), time.time(), moderator)
        await self._audit.record(
            AuditAction.MESSAGE_DELETED,
            moderator=moderator,
            message_id=message_id,
            player_id=stored.sender_id,
            chat=stored.room.type.value,
            clan_id=stored.room.clan_id,
        )

    async def mute(self, moderator: str, request: MuteRequest) -> Mute:
        mute = Mute(
            player_id=request.player_id,
            until=mute_until(request.minutes),
            reason=request.reason,
            moderator=moderator,
        )
        try:
            await self._mutes.mute(mute)
        except MutesUnavailable:
            log.exception("mute registry refused a mute")
            raise not_available("The mute registry") from None
        await self._audit.record(
            AuditAction.PLAYER_MUTED,
            moderator=moderator,
            player_id=mute.player_id,
            until=mute.until,
            reason=mute.reason,
        )
        return mute

    async def unmute(self, moderator: str, player_id: str) -> None:
        """Lift a mute; NOT_FOUND when none is in force for the player."""
        try:
            lifted = await self._mutes.unmute(player_id)
        except MutesUnavailable:
            log.exception("mute registry refused an unmute")
            raise not_available("The mute registry") from None
        if not lifted:
            raise ChatError.of(
                ErrorReason.NOT_FOUND, "player_id", "No mute is in force for this player", cut(player_id)
            )
        await self._audit.record(AuditAction.PLAYER_UNMUTED, moderator=moderator, player_id=player_id)

    async def mutes(self) -> list[Mute]:
        try:
            return await self._mutes.all()
        except MutesUnavailable:
            log.exception("mute registry could not be listed")
            raise not_available("The mute registry") from None

    async def reports(self, limit: int) -> list[Report]:
        try:
            return await self._reports.recent(limit)
        except ReportsUnavailable:
            log.exception("report log could not be read")
            raise not_available("The report log") from None
