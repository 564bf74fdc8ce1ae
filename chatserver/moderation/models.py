"""The moderator API's shapes, as pydantic models: request and response bodies, and their OpenAPI examples."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from chatserver.protocol import ChatType

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
