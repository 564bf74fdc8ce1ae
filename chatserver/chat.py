"""The chat use cases: post, react, edit, delete and report messages, read a room's history.

This is the data path's middle: a validated request is stored, and only once stored is its frame
encoded and published to the room's channel. It knows the store, the broker and the player
directory, and nothing of sockets or Starlette.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, datetime

from chatserver import metrics
from chatserver.broker.base import Broker, BrokerUnavailable, RoomFrame
from chatserver.delivery import Changes
from chatserver.events.model import EventType, draft
from chatserver.events.outbox import EventOutbox
from chatserver.frames import deleted_view, iso_millis, message_view, sender_of
from chatserver.moderation.audit import Audit, AuditAction
from chatserver.moderation.mutes import MuteRegistry
from chatserver.moderation.reports import ReportLog, ReportsUnavailable
from chatserver.players import Player, PlayerDirectory
from chatserver.protocol.errors import ChatError, not_available, not_found
from chatserver.protocol.inbound import (
    Bucket,
    Command,
    DeleteMessage,
    EditMessage,
    PostMessage,
    React,
    ReportMessage,
)
from chatserver.protocol.models import (
    DeletedMessage,
    HistoryData,
    HistoryMetaData,
    HistoryPage,
    Message,
    PaginationData,
    Report,
    Sender,
)
from chatserver.protocol.outbound import broadcast_text
from chatserver.protocol.vocabulary import BroadcastEvent, ChatType, ErrorReason, RoomKey
from chatserver.ratelimit import RateLimiter
from chatserver.settings import Rate, Settings
from chatserver.store.base import (
    MessageStore,
    MessageTarget,
    NewMessage,
    ReactionChange,
    StoredMessage,
    StoreUnavailable,
)
from chatserver.wordfilter.blocklist import Blocklist

log = logging.getLogger(__name__)

HISTORY_READS = "history reads"
"""The bucket kind of history pages and resume replays: one per page or per room replayed."""


@dataclass(frozen=True)
class HistoryRequest:
    """A checked history query: ``before`` (keyset) wins over ``page`` (offset)."""

    chat: ChatType
    limit: int
    page: int
    before: str | None


class ChatService:
    """Posts, reactions, edits, deletions, reports and history for one worker; shared by all its sockets."""

    def __init__(
        self,
        settings: Settings,
        store: MessageStore,
        broker: Broker,
        players: PlayerDirectory,
        limiter: RateLimiter,
        blocklist: Blocklist,
        mutes: MuteRegistry,
        reports: ReportLog,
        audit: Audit,
        outbox: EventOutbox,
    ) -> None:
        self._settings = settings
        self._outbox = outbox
        self._store = store
        self._broker = broker
        self._players = players
        self._limiter = limiter
        self._blocklist = blocklist
        self._mutes = mutes
        self._reports = reports
        self._audit = audit

    async def execute(self, player: Player, command: Command) -> None:
        """Carry out one client command; raises ``ChatError`` for the sender's one error frame.

        A muted player's commands are all refused, whatever they are.
        """
        await self.check_not_muted(player)
        if isinstance(command, React):
            await self.react(player, command)
        elif isinstance(command, EditMessage):
            await self.edit(player, command)
        elif isinstance(command, DeleteMessage):
            target = MessageTarget(command.message_id, self._room_of(player, command.chat), player.id)
            await self.delete(target, command.received_at, player.id)
        elif isinstance(command, ReportMessage):
            await self.report(player, command)
        else:
            await self.post(player, command)

    async def charge(self, player: Player, bucket: Bucket) -> None:
        """Take one token from the player's ``bucket``: every frame pays, before its ``data`` is checked.

        Reports have a bucket of their own, as large as the reactions'.
        """
        rate = self._settings.message_rate if bucket is Bucket.MESSAGES else self._settings.reaction_rate
        await self.check_rate(player, bucket.value, rate)

    async def check_not_muted(self, player: Player) -> None:
        """Raise NOT_ALLOWED, with ``additional.muted_until``, while a moderator's mute of the player is in force."""
        mute = await self._mutes.active(player.id)
        if mute is not None:
            raise ChatError.of(
                ErrorReason.NOT_ALLOWED,
                None,
                f"Player is muted until {mute.until}",
                additional={"muted_until": mute.until},
            )

    async def charge_connect(self, player: Player) -> None:
        """Take a connect token: a reconnect loop is refused (429) before it reads history or joins rooms."""
        await self.check_rate(player, "connects", self._settings.connect_rate)

    async def check_rate(self, player: Player, kind: str, rate: Rate) -> None:
        """Raise TOO_MANY_REQUESTS, with ``additional.retry_after_ms``, when the player's bucket is empty."""
        wait_ms = await self._limiter.take(f"{kind}:{player.id}", rate)
        if wait_ms:
            metrics.RATE_LIMITED.labels(kind).inc()
            raise ChatError.of(
                ErrorReason.TOO_MANY_REQUESTS,
                None,
                f"Too many {kind}; try again in a moment",
                additional={"retry_after_ms": wait_ms},
            )

    async def post(self, player: Player, command: PostMessage) -> None:
        """Screen with the word filter, store, then publish a ``newMessage`` to the room."""
        room = self._room_of(player, command.chat)
        content = self._blocklist.screen(command.content)
        new = NewMessage(room, player.id, player.name, player.avatar, content, command.feeling, command.response_type)
        event = draft(EventType.MESSAGE_CREATED, player.id, feeling=command.feeling, responseType=command.response_type)
        try:
            with metrics.timed(metrics.STORE_SECONDS.labels("add")):
                stored = await self._store.add(new, event)
        except StoreUnavailable:
            log.exception("store refused a new message")
            raise not_available("Message storage") from None
        sender = Sender(id=player.id, name=player.name, avatar=player.avatar)
        async with self._outbox.sending(stored, event.id):
            await self._publish(BroadcastEvent.NEW_MESSAGE, stored, message_view(stored, sender), command.received_at)

    async def react(self, player: Player, command: React) -> None:
        """Set, replace or remove the player's reaction atomically, then publish ``newReaction``."""
        room = self._room_of(player, command.chat)
        change = ReactionChange(command.message_id, player.id, player.name, command.emoji)
        kind = EventType.REACTION_REMOVED if command.emoji is None else EventType.REACTION_SET
        event = draft(kind, player.id, emoji=command.emoji)
        try:
            with metrics.timed(metrics.STORE_SECONDS.labels("react")):
                stored = await self._store.react(room, change, event)
            if stored is None:
                raise not_found(command.message_id)
            profiles = await self._players.profiles([stored.sender_id])
        except StoreUnavailable:
            log.exception("store refused a reaction")
            raise not_available("Message storage") from None
        view = message_view(stored, sender_of(stored, profiles))
        async with self._outbox.sending(stored, event.id):
            await self._publish(BroadcastEvent.NEW_REACTION, stored, view, command.received_at)

    async def edit(self, player: Player, command: EditMessage) -> None:
        """Replace the content of the player's own message atomically, then publish ``editedMessage``."""
        target = MessageTarget(command.message_id, self._room_of(player, command.chat), player.id)
        content = self._blocklist.screen(command.content)
        event = draft(EventType.MESSAGE_EDITED, player.id)
        try:
            with metrics.timed(metrics.STORE_SECONDS.labels("edit")):
                stored = await self._store.edit(target, content, event)
            if stored is None:
                raise not_found(command.message_id)
            profiles = await self._players.profiles([stored.sender_id])
        except StoreUnavailable:
            log.exception("store refused an edit")
            raise not_available("Message storage") from None
        view = message_view(stored, sender_of(stored, profiles))
        async with self._outbox.sending(stored, event.id):
            await self._publish(BroadcastEvent.EDITED_MESSAGE, stored, view, command.received_at)

    async def delete(self, target: MessageTarget, received_at: float, actor: str) -> StoredMessage:
        """Make the message a tombstone, then publish ``deletedMessage``; NOT_FOUND unless a live one matches.

        ``actor`` is who deleted it (the sender, or a moderator): the ``player_id`` of its event.
        """
        event = draft(EventType.MESSAGE_DELETED, actor)
        try:
            with metrics.timed(metrics.STORE_SECONDS.labels("delete")):
                stored = await self._store.delete(target, event)
        except StoreUnavailable:
            log.exception("store refused a deletion")
            raise not_available("Message storage") from None
        if stored is None:
            raise not_found(target.message_id)
        async with self._outbox.sending(stored, event.id):
            await self._publish(BroadcastEvent.DELETED_MESSAGE, stored, deleted_view(stored), received_at)
        return stored

    async def report(self, player: Player, command: ReportMessage) -> Report:
        """Keep a report of a message of the player's room for the moderators; nothing is broadcast."""
        room = self._room_of(player, command.chat)
        try:
            stored = await self._store.get(MessageTarget(command.message_id, room))
        except StoreUnavailable:
            log.exception("store refused a report's read")
            raise not_available("Reporting") from None
        if stored is None:
            raise not_found(command.message_id)
        report = Report(
            message_id=stored.id,
            chat=command.chat,
            clan_id=room.clan_id,
            sender_id=stored.sender_id,
            content=stored.content,
            reporter_id=player.id,
            reason=command.reason,
            at=iso_millis(datetime.now(UTC)),
        )
        try:
            await self._reports.add(report)
        except ReportsUnavailable:
            log.exception("report log refused a report")
            raise not_available("Reporting") from None
        metrics.REPORTS.labels(command.chat.value).inc()
        await self._audit.record(
            AuditAction.MESSAGE_REPORTED,
            player_id=player.id,
            message_id=stored.id,
            sender_id=stored.sender_id,
            chat=command.chat.value,
            clan_id=room.clan_id,
            reason=command.reason,
        )
        return report

    async def changes(self, room: RoomKey, since: datetime, limit: int, known: Container[str] = frozenset()) -> Changes:
        """What a socket of ``room`` would have received after ``since``, read back from the store.

        A tombstone is a ``deletedMessage``; a message created after ``since`` is a ``newMessage``
        (carrying its reactions as they are now); an older one, or one in ``known`` (ids the sockets
        have seen), an ``editedMessage`` if edited after ``since``, else a ``newReaction``; the newest
        ``limit`` changes at most. Raises ``StoreUnavailable``.
        """
        with metrics.timed(metrics.STORE_SECONDS.labels("changes")):
            found = await self._store.changes_since(room, since, limit)
        profiles = await self._players.profiles({m.sender_id for m in found.messages})
        read_at = time.time()
        frames = []
        for stored in found.messages:
            view: Message | DeletedMessage
            if stored.deleted_at is not None:
                event, view = BroadcastEvent.DELETED_MESSAGE, deleted_view(stored)
            else:
                if stored.created_at > since and stored.id not in known:
                    event = BroadcastEvent.NEW_MESSAGE
                elif stored.edited_at is not None and stored.edited_at > since:
                    event = BroadcastEvent.EDITED_MESSAGE
                else:
                    event = BroadcastEvent.NEW_REACTION
                view = message_view(stored, sender_of(stored, profiles))
            frames.append(RoomFrame(broadcast_text(event, view), stored.id, iso_millis(stored.updated_at), read_at))
        return Changes(frames, found.complete)

    async def history(self, player: Player, request: HistoryRequest) -> HistoryPage:
        """One page of the player's global or current clan room, newest first."""
        if request.chat is ChatType.CLAN and player.clan_id is None:
            raise ChatError.of(ErrorReason.NOT_AUTHORIZED, "clan_id", "Player is not a member of a clan")
        room = self._room_of(player, request.chat)
        offset = (request.page - 1) * request.limit
        try:
            with metrics.timed(metrics.STORE_SECONDS.labels("history")):
                if request.before is not None:
                    found = await self._store.page_before(room, request.before, request.limit)
                    if found is None:
                        raise not_found(request.before)
                    page, offset = found, 0
                else:
                    page = await self._store.page(room, request.limit, offset)
            profiles = await self._players.profiles({m.sender_id for m in page.messages})
        except StoreUnavailable:
            log.exception("store refused a history read")
            raise not_available("Message history") from None
        messages = [message_view(m, sender_of(m, profiles)) for m in page.messages]
        return HistoryPage(
            data=HistoryData(ChatMessage=messages),
            metaData=HistoryMetaData(dataCount=len(messages)),
            paginationData=PaginationData(
                currentPage=1 if request.before is not None else request.page,
                limit=request.limit,
                offset=offset,
                itemCount=page.total,
                pageCount=math.ceil(page.total / request.limit),
            ),
        )

    def _room_of(self, player: Player, chat: ChatType) -> RoomKey:
        if chat is ChatType.GLOBAL:
            return RoomKey.global_room()
        if player.clan_id is None:
            raise ChatError.of(ErrorReason.NOT_ALLOWED, "clan_id", "Player is not a member of a clan")
        return RoomKey.clan(player.clan_id)

    async def _publish(
        self, event: BroadcastEvent, stored: StoredMessage, view: Message | DeletedMessage, received_at: float
    ) -> None:
        text = broadcast_text(event, view)
        frame = RoomFrame(text, stored.id, iso_millis(stored.updated_at), received_at)
        try:
            with metrics.timed(metrics.BROKER_SECONDS):
                await self._broker.publish(stored.room.name, frame)
        except BrokerUnavailable:
            log.exception("broker refused a publish")
            raise ChatError.of(
                ErrorReason.NOT_AVAILABLE,
                None,
                "Live delivery is not available right now; the change was stored and shows in history",
                additional={"message_id": stored.id},
            ) from None
