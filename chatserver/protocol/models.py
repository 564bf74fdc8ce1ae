"""The wire shapes as pydantic models: frames are serialised from them and the OpenAPI document is generated from them.

Inbound frames are parsed rule by rule in ``inbound.py`` (one reason code per rule, which pydantic's
own errors do not give); the inbound models here give those shapes their OpenAPI components.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from chatserver.protocol.vocabulary import BroadcastEvent, ChatType, ErrorReason, InboundEvent, MembershipAction

# --- inbound (client -> server) ------------------------------------------------------------------


class MessageData(BaseModel):
    """``data`` of ``clanMessage`` / ``globalMessage``."""

    content: str = Field(description="Message text; trimmed, not blank, at most CHAT_CONTENT_MAX_CHARS code points.")
    feeling: str | None = Field(default=None, description="Optional short label, or one of CHAT_FEELINGS if set.")


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
        """Leave ``clan_id``, ``feeling`` and ``editedAt`` out when absent, as the game backend does (not ``null``)."""
        data: dict[str, Any] = handler(self)
        for key in ("clan_id", "feeling", "editedAt"):
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
