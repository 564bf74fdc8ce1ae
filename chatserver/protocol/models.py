"""The wire shapes as pydantic models: frames are serialised from them and the OpenAPI document is generated from them.

Inbound frames are parsed rule by rule in ``inbound.py`` (one reason code per rule, which pydantic's
own errors do not give); the inbound models here give those shapes their OpenAPI components.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer
from pydantic.config import JsonDict

from chatserver.protocol.vocabulary import BroadcastEvent, ChatType, ErrorReason, InboundEvent, MembershipAction

# --- inbound (client -> server) ------------------------------------------------------------------


class MessageData(BaseModel):
    """``data`` of ``clanMessage`` / ``globalMessage``."""

    content: str | None = Field(
        default=None,
        description="Message text; trimmed, not blank, at most CHAT_CONTENT_MAX_CHARS code points. Required unless "
        "responseType is given; a quick response without it has the responseType as its content.",
    )
    feeling: str | None = Field(default=None, description="Optional short label, or one of CHAT_FEELINGS if set.")
    responseType: str | None = Field(
        default=None,
        description="Optional quick response: one of CHAT_RESPONSE_TYPES if set (the game's ResponseType names in a "
        "game deployment), else any label of at most 64 characters.",
    )


class ReactionData(BaseModel):
    """``data`` of ``clanMessageReaction`` / ``globalMessageReaction``."""

    message_id: str = Field(description="24-hex id of a message in the room the event names.")
    emoji: str | None = Field(default=None, description="One emoji grapheme; missing or empty removes the reaction.")


class EditData(BaseModel):
    """``data`` of ``clanMessageEdit`` / ``globalMessageEdit``: only the sender may edit."""

    message_id: str = Field(description="24-hex id of the sender's own message in the room the event names.")
    content: str = Field(description="The new text; checked and filtered as a new message's.")


class MessageRefData(BaseModel):
    """``data`` of ``clanMessageDelete`` / ``globalMessageDelete``: only the sender may delete."""

    message_id: str = Field(description="24-hex id of the sender's own message in the room the event names.")


class ReportData(BaseModel):
    """``data`` of ``clanMessageReport`` / ``globalMessageReport``: tells the moderators, broadcasts nothing."""

    message_id: str = Field(description="24-hex id of a message in the room the event names.")
    reason: str | None = Field(default=None, description="Optional, at most 256 characters.")


class ClientFrame(BaseModel):
    """Every client frame: ``{"event", "data", "ref"?}`` as a JSON text frame."""

    event: InboundEvent
    data: MessageData | ReactionData | EditData | MessageRefData | ReportData
    ref: str | None = Field(default=None, max_length=64, description="Echoed in any error frame this frame causes.")


# --- outbound (server -> client) -----------------------------------------------------------------


class Sender(BaseModel):
    """Who wrote a message: id, display name and avatar as the game stores them."""

    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(alias="_id")
    name: str
    avatar: dict[str, Any] | None = None


class Reaction(BaseModel):
    """One player's reaction; at most one per player per message."""

    playerName: str
    emoji: str
    sender_id: str


class Message(BaseModel):
    """A chat message as every frame and history page shows it."""

    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(alias="_id")
    clan_id: str | None = Field(default=None, description="Present on clan messages only.")
    sender: Sender | None
    content: str
    feeling: str | None = Field(default=None, description="Present only if the sender gave one.")
    responseType: str | None = Field(default=None, description="The quick response, present only if one was sent.")
    type: ChatType
    reactions: list[Reaction]
    createdAt: str = Field(description="UTC ISO-8601 with milliseconds and Z.")
    updatedAt: str = Field(
        description="Same format; the time of the last change (creation or reaction). A client keeps the newest "
        "it has processed and reconnects with ?since=<that> to get what it missed."
    )
    editedAt: str | None = Field(default=None, description="Present once the sender has edited the message.")

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: Any) -> dict[str, Any]:
        """Leave ``clan_id``, ``feeling``, ``responseType`` and ``editedAt`` out when absent, as the game does."""
        data: dict[str, Any] = handler(self)
        for key in ("clan_id", "feeling", "responseType", "editedAt"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


class DeletedMessage(BaseModel):
    """What a ``deletedMessage`` frame says of a deleted message: which one, and when."""

    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(alias="_id")
    type: ChatType
    clan_id: str | None = Field(default=None, description="Present on clan messages only.")
    updatedAt: str
    deletedAt: str

    @model_serializer(mode="wrap")
    def _omit_absent_clan(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("clan_id") is None:
            data.pop("clan_id", None)
        return data


class BroadcastFrame(BaseModel):
    """Sent to every socket in the room when a message is created, edited or deleted, or its reactions change.

    ``deletedMessage`` carries a ``DeletedMessage``; every other event the whole ``Message`` as it is now.
    """

    chat: ChatType
    event: BroadcastEvent
    message: Message | DeletedMessage


class WrappedBroadcastFrame(BaseModel):
    """The game dialect's broadcast: the shipped Unity client reads ``root["message"]``."""

    message: BroadcastFrame


class ReadyFrame(BaseModel):
    """Sent once the socket has joined its rooms (and, on a resume, after the missed changes)."""

    event: Literal["ready"] = "ready"
    data: Literal[True] = True
    recovered: bool | None = Field(
        default=None,
        description="Only on a resume (?since=): true when every missed change was replayed, false when more "
        "changed than CHAT_RESUME_LIMIT (or history could not be read): reload history over HTTP.",
    )

    @model_serializer(mode="wrap")
    def _omit_absent_recovered(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("recovered") is None:
            data.pop("recovered", None)
        return data


class MembershipChange(BaseModel):
    """A player left or joined a clan: the membership channel's message and ``POST /internal/membership``'s body."""

    model_config = ConfigDict(frozen=True)

    player_id: str = Field(min_length=1)
    action: MembershipAction
    clan_id: str = Field(min_length=1)


class ClanChange(BaseModel):
    clan_id: str


class MembershipFrame(BaseModel):
    """Tells a socket that its player left or joined a clan."""

    event: Literal["clanLeft", "clanJoined"]
    data: ClanChange


class ErrorDetail(BaseModel):
    """One error object, the game backend's ``ServiceError`` shape."""

    reason: ErrorReason
    field: str | None = None
    value: Any = None
    message: str | None = None
    additional: Any = None


class ErrorFrame(BaseModel):
    """The one frame a failed request gets: a list of error objects, or a plain description."""

    error: list[ErrorDetail] | str
    ref: str | None = None

    @model_serializer(mode="wrap")
    def _omit_absent_ref(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("ref") is None:
            data.pop("ref", None)
        return data


class HttpErrorBody(BaseModel):
    """HTTP error body: the same objects under ``errors`` plus the status code."""

    errors: list[ErrorDetail]
    statusCode: int


# --- history (HTTP) ------------------------------------------------------------------------------


class HistoryData(BaseModel):
    ChatMessage: list[Message]


class HistoryMetaData(BaseModel):
    dataKey: Literal["ChatMessage"] = "ChatMessage"
    modelName: Literal["ChatMessage"] = "ChatMessage"
    dataType: Literal["Array"] = "Array"
    dataCount: int


class PaginationData(BaseModel):
    currentPage: int
    limit: int
    offset: int
    itemCount: int = Field(description="Messages in this room in all.")
    pageCount: int


class HistoryPage(BaseModel):
    """``GET /chat/history`` body, in the game backend's envelope."""

    data: HistoryData
    metaData: HistoryMetaData
    paginationData: PaginationData


class HealthBody(BaseModel):
    status: Literal["ok", "unavailable", "draining"]
    checks: dict[str, bool] = Field(default_factory=dict)


# --- moderation (HTTP) ---------------------------------------------------------------------------

MUTE_MINUTES_MAX = 60 * 24 * 365
REASON_MAX_CHARS = 256

MUTE_REQUEST_EXAMPLE: JsonDict = {"player_id": "6650a1b2c3d4e5f6a7b8c9d0", "minutes": 30, "reason": "spam"}
MUTE_EXAMPLE: JsonDict = {
    "player_id": "6650a1b2c3d4e5f6a7b8c9d0",
    "until": "2026-12-02T15:30:00.000Z",
    "reason": "spam",
    "moderator": "6650a1b2c3d4e5f6a7b8c9ff",
}
REPORT_EXAMPLE: JsonDict = {
    "message_id": "6650a1b2c3d4e5f6a7b8c9aa",
    "chat": "global",
    "clan_id": None,
    "sender_id": "6650a1b2c3d4e5f6a7b8c9d0",
    "content": "buy gold at ...",
    "reporter_id": "6650a1b2c3d4e5f6a7b8c9bb",
    "reason": "spam",
    "at": "2026-12-02T15:00:00.000Z",
}


class MuteRequest(BaseModel):
    """``POST /chat/moderation/mutes``: mute a player for ``minutes``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [MUTE_REQUEST_EXAMPLE]})

    player_id: str = Field(min_length=1, max_length=64)
    minutes: int = Field(ge=1, le=MUTE_MINUTES_MAX, description="How long the mute lasts, in whole minutes.")
    reason: str | None = Field(default=None, max_length=REASON_MAX_CHARS)


class Mute(BaseModel):
    """A player who may not post, react, edit or report until ``until``; ``moderator`` is who muted them."""

    model_config = ConfigDict(json_schema_extra={"examples": [MUTE_EXAMPLE]})

    player_id: str
    until: str = Field(description="UTC ISO-8601 with milliseconds and Z.")
    reason: str | None = None
    moderator: str = Field(description='The moderator\'s player id, or "service" for the service token.')


class MuteList(BaseModel):
    """``GET /chat/moderation/mutes``: the mutes in force, soonest to end first."""

    mutes: list[Mute]


class Report(BaseModel):
    """A player reported a message; ``content`` and ``sender_id`` are the message as it was when reported."""

    model_config = ConfigDict(json_schema_extra={"examples": [REPORT_EXAMPLE]})

    message_id: str
    chat: ChatType
    clan_id: str | None = None
    sender_id: str
    content: str
    reporter_id: str
    reason: str | None = None
    at: str = Field(description="UTC ISO-8601 with milliseconds and Z.")


class ReportList(BaseModel):
    """``GET /chat/moderation/reports``: the most recent reports, newest first."""

    reports: list[Report]
