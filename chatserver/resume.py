"""Resuming a socket after a reconnect: replay what changed in its rooms since the client's last frame.

A client keeps the newest ``updatedAt`` it processed and reconnects with ``?since=<it>`` (or the
``X-Chat-Since`` header). The socket joins its rooms first while holding live frames back, then the
missed changes are read from the store, then ``ready`` (with ``recovered``) and the held live frames
follow, less those the replay already carried in the same or a newer version. So nothing is lost
between the replay and the live stream and nothing arrives twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

from chatserver.broker.base import RoomFrame
from chatserver.chat import HISTORY_READS, ChatService
from chatserver.players import Player
from chatserver.protocol.errors import ChatError
from chatserver.protocol.outbound import change_of
from chatserver.protocol.vocabulary import ErrorReason, RoomKey, cut
from chatserver.settings import Settings
from chatserver.store.base import StoreUnavailable

log = logging.getLogger(__name__)

SINCE_HEADER = "x-chat-since"


def since_from_request(headers: Mapping[str, str], query: Mapping[str, str]) -> datetime | None:
    """The resume point: the ``X-Chat-Since`` header, else the ``since`` query parameter (ISO-8601).

    A time without a zone is UTC, as every time this service sends. Anything unreadable is refused
    with VALIDATION on ``since`` rather than silently ignored: the client would believe it resumed.
    """
    raw = headers.get(SINCE_HEADER) or query.get("since")
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: a time at the calendar's edge moved past it to UTC
        raise ChatError.of(
            ErrorReason.VALIDATION, "since", "since must be an ISO-8601 time such as 2025-06-23T13:03:15.778Z", cut(raw)
        ) from None
    return moment


@dataclass
class Replay:
    """The missed changes of a socket's rooms, and whether they are all of them."""

    frames: list[RoomFrame]
    recovered: bool

    @property
    def texts(self) -> list[str]:
        return [frame.text for frame in self.frames]

    @cached_property
    def _replayed(self) -> dict[str, str]:
        return {frame.message_id: frame.updated_at for frame in self.frames}

    def already_sent(self, text: str) -> bool:
        """Whether a held live frame carries a version of a message the replay sent (or a newer one).

        ``updatedAt`` texts all have one fixed format, so they compare as the times they spell.
        """
        change = change_of(text)
        if change is None:
            return False
        message_id, updated_at = change
        return self._replayed.get(message_id, "") >= updated_at


async def missed_changes(player: Player, since: datetime, chat: ChatService, settings: Settings) -> Replay:
    """Every room of ``player`` in turn (global, then the clan), at most ``CHAT_RESUME_LIMIT`` changes each.

    Each room's read is charged to the player's history bucket, as one ``GET /chat/history`` is: a
    reconnect loop would otherwise read the store in bulk. A room the bucket cannot pay for is not
    replayed and ``ready`` says ``recovered: false``; the client reads history when it can.
    """
    rooms = [RoomKey.global_room()] + ([RoomKey.clan(player.clan_id)] if player.clan_id is not None else [])
    frames: list[RoomFrame] = []
    recovered = True
    for room in rooms:
        try:
            await chat.check_rate(player, HISTORY_READS, settings.history_rate)
        except ChatError:
            log.debug("history bucket empty; room not replayed", extra={"player_id": player.id, "room": room.name})
            recovered = False
            continue
        try:
            changes = await chat.changes(room, since, settings.resume_limit)
        except StoreUnavailable:
            log.warning("resume could not read history", extra={"player_id": player.id, "room": room.name})
            recovered = False
            continue
        frames.extend(changes.frames)
        recovered = recovered and changes.complete
    return Replay(frames, recovered)
