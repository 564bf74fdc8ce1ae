"""The moderator API's part of the OpenAPI document: its paths, with examples; its models are components."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from chatserver.protocol.models import (
    MUTE_EXAMPLE,
    MUTE_REQUEST_EXAMPLE,
    REPORT_EXAMPLE,
    Mute,
    MuteList,
    MuteRequest,
    Report,
    ReportList,
)

COMPONENT_MODELS: list[type[BaseModel]] = [MuteRequest, Mute, MuteList, Report, ReportList]

_TAG = "Moderation"
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"serviceToken": []}]
_AUTH = (
    "Authorised by a JWT whose `roles` claim holds `moderator`, or by the service token (`CHAT_INTERNAL_TOKEN`): "
    "401 without a valid token, 403 for a token without the role."
)
_EXAMPLE_ID = "6650a1b2c3d4e5f6a7b8c9aa"
_FORBIDDEN_EXAMPLE = {
    "errors": [
        {
            "reason": "NOT_AUTHORIZED",
            "field": "token",
            "value": None,
            "message": "The moderator role is required",
            "additional": None,
        }
    ],
    "statusCode": 403,
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str, example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": _ref(name)}
    if example is not None:
        content["example"] = example
    return {"description": description, "content": {"application/json": content}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(status): _json("HttpErrorBody", "Error body", _FORBIDDEN_EXAMPLE if status == 403 else None)
        for status in statuses
    }


def _operation(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "tags": [_TAG],
        "summary": summary,
        "description": _AUTH,
        "security": _SECURITY,
        **extra,
        "responses": responses,
    }


def moderation_paths() -> dict[str, Any]:
    return {
        "/chat/moderation/messages/{message_id}": {
            "delete": _operation(
                "Delete any message: a tombstone, and a deletedMessage to its room on every replica",
                {"204": {"description": "Deleted"}, **_errors(400, 401, 403, 404, 503)},
                parameters=[
                    {
                        "name": "message_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{24}$"},
                        "example": _EXAMPLE_ID,
                    }
                ],
            )
        },
        "/chat/moderation/mutes": {
            "post": _operation(
                "Mute a player for some minutes: their next frame on any replica is refused with muted_until",
                {
                    "201": _json("Mute", "The mute, in force on every replica", MUTE_EXAMPLE),
                    **_errors(400, 401, 403, 503),
                },
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _ref("MuteRequest"),
                            "example": MUTE_REQUEST_EXAMPLE,
                        }
                    },
                },
            ),
            "get": _operation(
                "The mutes in force, soonest to end first",
                {"200": _json("MuteList", "Mutes in force", {"mutes": [MUTE_EXAMPLE]}), **_errors(401, 403, 503)},
            ),
        },
        "/chat/moderation/mutes/{player_id}": {
            "delete": _operation(
                "Lift a player's mute on every replica",
                {"204": {"description": "Unmuted"}, **_errors(401, 403, 404, 503)},
                parameters=[
                    {
                        "name": "player_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "example": MUTE_EXAMPLE["player_id"],
                    }
                ],
            )
        },
        "/chat/moderation/reports": {
            "get": _operation(
                "Recent reports of messages by players, newest first",
                {"200": _json("ReportList", "Reports", {"reports": [REPORT_EXAMPLE]}), **_errors(400, 401, 403, 503)},
                parameters=[
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                    }
                ],
            )
        },
    }
