"""The protocol's words: rooms, events, dialects, close codes, error reasons and the game's moods."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any


class ErrorReason(StrEnum):
    """The game backend's reason codes (``APIErrorReason``) that this service uses."""

    NOT_FOUND = "NOT_FOUND"
    REQUIRED = "REQUIRED"
    NOT_ALLOWED = "NOT_ALLOWED"
    VALIDATION = "VALIDATION"
    NOT_STRING = "NOT_STRING"
    NOT_OBJECT = "NOT_OBJECT"
    WRONG_ENUM = "WRONG_ENUM"
    MORE_THAN_MAX = "MORE_THAN_MAX"
    NOT_AUTHORIZED = "NOT_AUTHORIZED"
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"
    NOT_AUTHENTICATED = "NOT_AUTHENTICATED"
    TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"
    NOT_AVAILABLE = "NOT_AVAILABLE"
    UNEXPECTED = "UNEXPECTED"


class ChatType(StrEnum):
    """A room kind; also the ``type`` of a stored message and the ``chat`` of a broadcast."""

    CLAN = "clan"
    GLOBAL = "global"


class InboundEvent(StrEnum):
    """The events a client may send."""

    CLAN_MESSAGE = "clanMessage"
    GLOBAL_MESSAGE = "globalMessage"
    CLAN_MESSAGE_REACTION = "clanMessageReaction"
    GLOBAL_MESSAGE_REACTION = "globalMessageReaction"
    CLAN_MESSAGE_EDIT = "clanMessageEdit"
    GLOBAL_MESSAGE_EDIT = "globalMessageEdit"
    CLAN_MESSAGE_DELETE = "clanMessageDelete"
    GLOBAL_MESSAGE_DELETE = "globalMessageDelete"
    CLAN_MESSAGE_REPORT = "clanMessageReport"
    GLOBAL_MESSAGE_REPORT = "globalMessageReport"


class BroadcastEvent(StrEnum):
    NEW_MESSAGE = "newMessage"
    NEW_REACTION = "newReaction"
    EDITED_MESSAGE = "editedMessage"
    DELETED_MESSAGE = "deletedMessage"


class MembershipAction(StrEnum):
    LEAVE = "leave"
    JOIN = "join"


class Dialect(StrEnum):
    """What a socket can parse: the wiki's protocol, or only what the shipped Unity client reads."""

    WIKI = "wiki"
    GAME = "game"

    @property
    def subprotocol(self) -> str:
        """The ``Sec-WebSocket-Protocol`` token that asks for this dialect."""
        return f"altzone-chat.{self.value}"

    @classmethod
    def of_subprotocol(cls, token: str) -> Dialect | None:
        for dialect in cls:
            if dialect.subprotocol == token:
                return dialect
        return None


class CloseCode(Enum):
    """Every close the server starts: the WebSocket code and the reason text sent with it."""

    SERVICE_RESTART = (1012, "service restart")
    OVERLOADED = (1013, "server overloaded; try again later")
    TOKEN_EXPIRED = (4401, "token expired")
    SLOW_CONSUMER = (1008, "slow consumer")
    TOO_MANY_SOCKETS = (1008, "too many connections for this player")
    TOO_MANY_REFUSALS = (1008, "too many refused frames")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RoomKey:
    """A room: the global one, or one clan's. Also names the room's broker channel."""

    type: ChatType
    clan_id: str | None = None

    @classmethod
    def global_room(cls) -> RoomKey:
        return cls(ChatType.GLOBAL)

    @classmethod
    def clan(cls, clan_id: str) -> RoomKey:
        return cls(ChatType.CLAN, clan_id)

    @property
    def name(self) -> str:
        """``global`` or ``clan:<clan_id>``; the suffix of the room's broker channel."""
        return "global" if self.type is ChatType.GLOBAL else f"clan:{self.clan_id}"

    @classmethod
    def from_name(cls, name: str) -> RoomKey:
        """The room a ``name`` spells (the inverse of ``name``)."""
        return cls.global_room() if name == "global" else cls.clan(name.removeprefix("clan:"))


# The pieces of a game avatar, each ``{"id": int, "color": str}``; a bare number is a piece from before
# the game's avatar refactor, which the game itself reads as that id in white (``wrapLegacyPiece``).
AVATAR_PIECES = ("head", "hair", "eyes", "nose", "mouth", "eyebrows", "clothes", "feet", "hands")
LEGACY_PIECE_COLOR = "#ffffff"
# The shipped client's ``Mood`` enum, in its exact spelling (``Enum.Parse`` is case-sensitive).
MOODS = ("Happy", "Sad", "Neutral", "Love", "Thinking", "Wink", "Angry", "None")
# The client's quick responses, ``ResponseType`` in Assets/MenuUi/Scripts/Chat/ChatResponse.cs (Alt-Org/Altzone
# 50c5c4d2): a game deployment's default CHAT_RESPONSE_TYPES. The game backend's enum lacks the last two.
RESPONSE_TYPES = (
    "NeedCompany",
    "NewGame",
    "ComingToPlay",
    "WantToPlay",
    "Yes",
    "No",
    "Online",
    "Leaving",
    "Busy",
    "WinningStreak",
    "LosingStreak",
    "Discord",
    "Lonely",
    "GoodGame",
    "BadGame",
    "SkillIssue",
    "SkillIssue2",
    "Funny",
)
RESPONSE_TYPE_MAX_CHARS = 64
# The reactions the client's buttons send; a game deployment's default CHAT_REACTIONS.
GAME_REACTIONS = ("Happy", "Sad", "Love", "Wink", "Angry")
# A Unicode reaction from a wiki client in a room the game reads, as the Mood the game shows for it.
MOOD_OF_EMOJI = {
    "😀": "Happy",
    "😃": "Happy",
    "😄": "Happy",
    "😊": "Happy",
    "🙂": "Happy",
    "😢": "Sad",
    "😭": "Sad",
    "☹️": "Sad",
    "❤️": "Love",
    "❤": "Love",
    "😍": "Love",
    "🥰": "Love",
    "😘": "Love",
    "😉": "Wink",
    "😜": "Wink",
    "😠": "Angry",
    "😡": "Angry",
    "🤬": "Angry",
}
_MOOD_BY_FOLDED = {mood.casefold(): mood for mood in MOODS}

_OBJECT_ID = re.compile(r"[0-9a-f]{24}", re.IGNORECASE)
ECHO_MAX_CHARS = 64
# Echoed numbers stay short: a 4000-digit integer is not reflected back.
_ECHO_INT_MAX = 2**63


def mood_named(label: str) -> str | None:
    """The Mood a label names, in the enum's spelling (``"love"`` -> ``"Love"``), or ``None``."""
    return _MOOD_BY_FOLDED.get(label.strip().casefold())


def is_object_id(value: Any) -> bool:
    """A 24-hex ObjectId spelling, checked before any value reaches a query."""
    return isinstance(value, str) and _OBJECT_ID.fullmatch(value) is not None


def cut(text: str) -> str:
    """A query parameter as an HTTP error echoes it: at most ``ECHO_MAX_CHARS`` characters."""
    return text[:ECHO_MAX_CHARS]


def echo(value: Any) -> Any:
    """A frame's value as an error frame's ``value`` shows it: short scalars only, no long strings."""
    if isinstance(value, str):
        return value if len(value) <= ECHO_MAX_CHARS else None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _ECHO_INT_MAX:
        return None
    return value if isinstance(value, int | float | bool) else None
