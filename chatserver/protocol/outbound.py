"""Outbound frames per dialect: the wiki's frames as the models spell them, and the game's subset of them.

A broadcast travels between workers as its wiki text, encoded once. A worker renders it for each
dialect present in the room once (``Renderer.broadcast``), never per socket. The game dialect sends
only what the shipped Unity client parses: wrapped broadcasts whose message passes its rules.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

from chatserver.protocol.errors import ChatError
from chatserver.protocol.models import (
    BroadcastFrame,
    ClanChange,
    DeletedMessage,
    HistoryPage,
    MembershipFrame,
    Message,
    ReadyFrame,
)
from chatserver.protocol.vocabulary import (
    AVATAR_PIECES,
    LEGACY_PIECE_COLOR,
    MOOD_OF_EMOJI,
    BroadcastEvent,
    ChatType,
    Dialect,
    mood_named,
)

READY_TEXT = ReadyFrame().model_dump_json()
GAME_BROADCASTS = frozenset({BroadcastEvent.NEW_MESSAGE.value, BroadcastEvent.NEW_REACTION.value})
"""The broadcasts the shipped client handles; it would throw at any other (later features' edits, deletions)."""
_INT32 = range(-(2**31), 2**31)


def broadcast_text(event: BroadcastEvent, message: Message | DeletedMessage) -> str:
    """The wiki text of one change: what the broker carries and every wiki socket receives."""
    return BroadcastFrame(chat=ChatType(message.type), event=event, message=message).model_dump_json(by_alias=True)


def change_of(text: str) -> tuple[str, str] | None:
    """``(message id, updatedAt)`` of a broadcast text of either dialect; ``None`` for any other frame.

    Parses the text: only for the few frames held while a socket resumes or a room catches up.
    """
    frame = json.loads(text)
    inner = frame.get("message")
    if isinstance(inner, dict) and "chat" in inner:  # the game's wrapped envelope
        inner = inner.get("message")
    if not isinstance(inner, dict) or "updatedAt" not in inner:
        return None
    return inner["_id"], inner["updatedAt"]


class Renderer(ABC):
    """The frames one dialect receives; ``None`` where the dialect gets no frame at all."""

    dialect: Dialect

    @abstractmethod
    def broadcast(self, wiki_text: str) -> str | None: ...

    @abstractmethod
    def ready(self, recovered: bool | None) -> str | None: ...

    @abstractmethod
    def error(self, error: ChatError) -> str | None: ...

    @abstractmethod
    def membership(self, joined: bool, clan_id: str) -> str | None: ...

    @abstractmethod
    def history(self, page: HistoryPage) -> str: ...


class WikiRenderer(Renderer):
    """The whole protocol, as the wiki and this project's protocol document describe it."""

    dialect = Dialect.WIKI

    def broadcast(self, wiki_text: str) -> str | None:
        return wiki_text

    def ready(self, recovered: bool | None) -> str | None:
        """``ready``; with ``recovered`` when the socket resumed (``?since=``)."""
        return READY_TEXT if recovered is None else ReadyFrame(recovered=recovered).model_dump_json()

    def error(self, error: ChatError) -> str | None:
        return error.frame_text()

    def membership(self, joined: bool, clan_id: str) -> str | None:
        event = "clanJoined" if joined else "clanLeft"
        return MembershipFrame(event=event, data=ClanChange(clan_id=clan_id)).model_dump_json()

    def history(self, page: HistoryPage) -> str:
        return page.model_dump_json(by_alias=True)


class GameRenderer(Renderer):
    """Only what the shipped client's ``HandleMessage`` parses: any other ``{...}`` frame stops its chat.

    Non-broadcast frames are not sent at all (rather than sent unparseable with trailing whitespace):
    nothing the client could not use crosses the network, and a future client version cannot trip
    over them. Every message, live or in history, is made to pass the client's field rules.
    """

    dialect = Dialect.GAME

    def broadcast(self, wiki_text: str) -> str | None:
        """The wrapped frame of a ``newMessage`` / ``newReaction``; ``None`` for any other broadcast."""
        frame = json.loads(wiki_text)
        if frame.get("event") not in GAME_BROADCASTS or not isinstance(frame.get("message"), dict):
            return None
        frame["message"] = game_message(frame["message"])
        return _compact({"message": frame})

    def ready(self, recovered: bool | None) -> str | None:
        return None

    def error(self, error: ChatError) -> str | None:
        return None

    def membership(self, joined: bool, clan_id: str) -> str | None:
        return None

    def history(self, page: HistoryPage) -> str:
        body = page.model_dump(by_alias=True, mode="json")
        body["data"]["ChatMessage"] = [game_message(message) for message in body["data"]["ChatMessage"]]
        return _compact(body)


RENDERERS: dict[Dialect, Renderer] = {Dialect.WIKI: WikiRenderer(), Dialect.GAME: GameRenderer()}


def game_message(message: dict[str, Any]) -> dict[str, Any]:
    """A message as the shipped client reads it without throwing (``game-client`` receive rules).

    ``feeling`` becomes an exact Mood name or is left out; each reaction's emoji becomes a Mood (a
    Unicode emoji through ``MOOD_OF_EMOJI``) or the reaction is left out; ``sender`` is always an
    object and its avatar keeps only ``{id, color}`` pieces, else ``null``.
    """
    shown = dict(message)
    given = message.get("sender")
    sender: dict[str, Any] = given if isinstance(given, dict) else {}
    shown["sender"] = {
        "_id": str(sender.get("_id", "")),
        "name": str(sender.get("name", "")),
        "avatar": game_avatar(sender.get("avatar")),
    }
    feeling = message.get("feeling")
    mood = mood_named(feeling) if isinstance(feeling, str) else None
    if mood is None:
        shown.pop("feeling", None)
    else:
        shown["feeling"] = mood
    shown["reactions"] = [
        {"playerName": str(r.get("playerName", "")), "emoji": mood, "sender_id": str(r.get("sender_id", ""))}
        for r in message.get("reactions") or []
        if isinstance(r, dict) and (mood := _reaction_mood(r.get("emoji"))) is not None
    ]
    return shown


def game_avatar(avatar: Any) -> dict[str, dict[str, Any]] | None:
    """The known pieces as ``{id: int, color: str}`` (a bare number as the game reads it); ``None`` if none is."""
    if not isinstance(avatar, dict):
        return None
    pieces = {}
    for key in AVATAR_PIECES:
        piece = avatar.get(key)
        if type(piece) is int:
            piece = {"id": piece, "color": LEGACY_PIECE_COLOR}
        if not isinstance(piece, dict):
            continue
        piece_id, color = piece.get("id"), piece.get("color")
        if type(piece_id) is int and piece_id in _INT32 and isinstance(color, str):
            pieces[key] = {"id": piece_id, "color": color}
    return pieces or None


def _reaction_mood(emoji: Any) -> str | None:
    if not isinstance(emoji, str):
        return None
    return mood_named(emoji) or MOOD_OF_EMOJI.get(emoji)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
