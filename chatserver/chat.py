"""The chat use cases: post a message, react to one, read a room's history.

This is the data path's middle: a validated request is stored, and only once stored is its frame
encoded and published to the room's channel. It knows the store, the broker and the player
directory, and nothing of sockets or Starlette.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from chatserver.broker.base import Broker, BrokerUnavailable
from chatserver.errors import ChatError, not_available, not_found
from chatserver.frames import broadcast_text, message_view, sender_of
from chatserver.players import Player, PlayerDirectory
from chatserver.protocol import (
    BroadcastEvent,
    ChatType,
    ErrorReason,
    HistoryData,
    HistoryMetaData,
    HistoryPage,
    InboundEvent,
    PaginationData,
    Sender,
)
from chatserver.settings import Settings
from chatserver.store.base import MessageStore, NewMessage, ReactionChange, RoomKey, StoredMessage, StoreUnavailable
from chatserver.validation import InboundFrame, check_message, check_reaction

log = logging.getLogger(__name__)

_CHAT_OF_EVENT = {
    InboundEvent.CLAN_MESSAGE: ChatType.CLAN,
    InboundEvent.GLOBAL_MESSAGE: ChatType.GLOBAL,
    InboundEvent.CLAN_MESSAGE_REACTION: ChatType.CLAN,
    InboundEvent.GLOBAL_MESSAGE_REACTION: ChatType.GLOBAL,
}
_REACTION_EVENTS = {InboundEvent.CLAN_MESSAGE_REACTION, InboundEvent.GLOBAL_MESSAGE_REACTION}


@dataclass(frozen=True)
class HistoryRequest:
    """A checked history query: ``before`` (keyset) wins over ``page`` (offset)."""

    chat: ChatType
    limit: int
    page: int
    before: str | None


class ChatService:
    """Posts, reactions and history for one worker; shared by all its sockets."""

    def __init__(self, settings: Settings, store: MessageStore, broker: Broker, players: PlayerDirectory) -> None:
        self._settings = settings
        self._store = store
        self._broker = broker
        self._players = players

    async def handle(self, player: Player, frame: InboundFrame) -> None:
        """Carry out one client frame; raises ``ChatError`` for the sender's one error frame."""
        chat = _CHAT_OF_EVENT[frame.event]
        if frame.event in _REACTION_EVENTS:
            await self.react(player, chat, frame.data)
        else:
            await self.post(player, chat, frame.data)

    async def post(self, player: Player, chat: ChatType, data: dict[str, object]) -> None:
        """Validate, store, then publish a ``newMessage`` to the room."""
        checked = check_message(data, self._settings)
        room = self._room_of(player, chat)
        new = NewMessage(room, player.id, player.name, player.avatar, checked.content, checked.feeling)
        try:
            stored = await self._store.add(new)
        except StoreUnavailable:
            log.exception("store refused a new message")
            raise not_available("Message storage") from None
        sender = Sender(id=player.id, name=player.name, avatar=player.avatar)
        await self._publish(BroadcastEvent.NEW_MESSAGE, stored, sender)

    async def react(self, player: Player, chat: ChatType, data: dict[str, object]) -> None:
        """Set, replace or remove the player's reaction atomically, then publish ``newReaction``."""
        checked = check_reaction(data)
        room = self._room_of(player, chat)
        change = ReactionChange(checked.message_id, player.id, player.name, checked.emoji)
        try:
            stored = await self._store.react(room, change)
            if stored is None:
                raise not_found(checked.message_id)
            profiles = await self._players.profiles([stored.sender_id])
        except StoreUnavailable:
            log.exception("store refused a reaction")
            raise not_available("Message storage") from None
        await self._publish(BroadcastEvent.NEW_REACTION, stored, sender_of(stored, profiles))

    async def history(self, player: Player, request: HistoryRequest) -> HistoryPage:
        """One page of the player's global or current clan room, newest first."""
        if request.chat is ChatType.CLAN and player.clan_id is None:
            raise ChatError.of(ErrorReason.NOT_AUTHORIZED, "clan_id", "Player is not a member of a clan")
        room = self._room_of(player, request.chat)
        offset = (request.page - 1) * request.limit
        try:
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

    async def _publish(self, event: BroadcastEvent, stored: StoredMessage, sender: Sender) -> None:
        text = broadcast_text(event, message_view(stored, sender), self._settings.envelope)
        try:
            await self._broker.publish(stored.room.name, text)
        except BrokerUnavailable:
            log.exception("broker refused a publish")
            raise ChatError.of(
                ErrorReason.NOT_AVAILABLE,
                None,
                "Live delivery is not available right now; the change was stored and shows in history",
                additional={"message_id": stored.id},
            ) from None
