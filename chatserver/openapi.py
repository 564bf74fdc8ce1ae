"""The OpenAPI document, generated from the protocol layer's models and vocabulary (never written twice).

HTTP routes are described as paths; the WebSocket frames, which OpenAPI has no verbs for, are
components, with ``/ws/chat`` documented in the ``info`` description.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from chatserver.moderation import openapi as moderation
from chatserver.protocol import models as protocol
from chatserver.protocol.vocabulary import CloseCode, Dialect

_COMPONENT_MODELS: list[type[BaseModel]] = [
    protocol.ClientFrame,
    protocol.MessageData,
    protocol.ReactionData,
    protocol.BroadcastFrame,
    protocol.WrappedBroadcastFrame,
    protocol.ReadyFrame,
    protocol.MembershipFrame,
    protocol.MembershipChange,
    protocol.ErrorFrame,
    protocol.HttpErrorBody,
    protocol.HistoryPage,
    protocol.HealthBody,
    *moderation.COMPONENT_MODELS,
]

_WS_DESCRIPTION = """Real-time chat for Altzone.

**WebSocket** `GET /ws/chat` with `Authorization: Bearer <jwt>` or `?token=<jwt>`, and to resume
after a reconnect `?since=<updatedAt>` or `X-Chat-Since: <updatedAt>` (the newest `updatedAt` the
client processed): the changes since then are replayed as `BroadcastFrame`s before `ReadyFrame`,
whose `recovered` says whether they were all of them. After the handshake the server sends
`ReadyFrame`. Client frames: `ClientFrame` (`clanMessage`, `globalMessage` with `MessageData`;
`clanMessageReaction`, `globalMessageReaction` with `ReactionData`; `clanMessageEdit`,
`globalMessageEdit` with `EditData`; `clanMessageDelete`, `globalMessageDelete` with `MessageRefData`;
`clanMessageReport`, `globalMessageReport` with `ReportData`). Server frames: `BroadcastFrame`
(`newMessage`, `newReaction`, `editedMessage` with a `Message`; `deletedMessage` with a
`DeletedMessage`), `MembershipFrame`, `ErrorFrame`. A refused handshake answers HTTP 400/401/403/404/429/503 with an
`ErrorFrame` body.

**Dialects**: `Sec-WebSocket-Protocol: {subprotocols}` picks one per socket (echoed; unknown ones
get 400); without it the deployment's `CHAT_DIALECT` applies. The game dialect receives only
`WrappedBroadcastFrame`s, shaped as the shipped Unity client parses them.

**Close codes**: {close_codes}, 1009 (frame too large).""".format(
    subprotocols=" or ".join(f"`{dialect.subprotocol}`" for dialect in Dialect),
    close_codes=", ".join(f"{close.code} ({close.reason})" for close in CloseCode),
)


class _FieldsNotSerializerReturnType(GenerateJsonSchema):
    """Describe a model with a wrap ``model_serializer`` by its fields.

    ``Message`` and ``ErrorFrame`` use a wrap serializer only to leave absent optional keys out; its
    ``dict[str, Any]`` return type would otherwise become the whole schema (an object with no
    properties), hiding every field name from the document.
    """

    def ser_schema(
        self, schema: core_schema.SerSchema | core_schema.IncExSeqSerSchema | core_schema.IncExDictSerSchema
    ) -> JsonSchemaValue | None:
        if schema["type"] == "function-wrap":
            return None
        return super().ser_schema(schema)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_content(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _error_responses(*statuses: int) -> dict[str, Any]:
    return {str(status): _json_content("HttpErrorBody", "Error body") for status in statuses}


def build_openapi(root_path: str = "") -> dict[str, Any]:
    """The whole document; ``root_path`` becomes the server URL so Swagger UI calls the right prefix."""
    _, definitions = models_json_schema(
        [(model, "serialization") for model in _COMPONENT_MODELS],
        by_alias=True,
        ref_template="#/components/schemas/{model}",
        schema_generator=_FieldsNotSerializerReturnType,
    )
    history_parameters = [
        {"name": "type", "in": "query", "schema": {"type": "string", "enum": ["clan", "global"], "default": "global"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 50, "default": 20}},
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
        {
            "name": "before",
            "in": "query",
            "description": "Keyset cursor: only messages older than this message id (wins over page).",
            "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{24}$"},
        },
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Altzone chat", "version": "1.0.0", "description": _WS_DESCRIPTION},
        "servers": [{"url": root_path or "/"}],
        "paths": {
            "/chat/history": {
                "get": {
                    "tags": ["Chat"],
                    "summary": "A page of the global or the player's clan room, newest first",
                    "security": [{"bearer": []}],
                    "parameters": history_parameters,
                    "responses": {
                        "200": _json_content("HistoryPage", "Messages, newest first"),
                        **_error_responses(400, 401, 403, 404, 503),
                    },
                }
            },
            "/internal/membership": {
                "post": {
                    "tags": ["Internal"],
                    "summary": "A player left or joined a clan: move their sockets on every replica",
                    "security": [{"serviceToken": []}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("MembershipChange")}},
                    },
                    "responses": {
                        "202": _json_content("MembershipChange", "Published to every replica"),
                        **_error_responses(400, 401, 403, 503),
                    },
                }
            },
            **moderation.moderation_paths(),
            "/healthz": {
                "get": {
                    "tags": ["Health"],
                    "summary": "Liveness",
                    "responses": {"200": _json_content("HealthBody", "Alive")},
                }
            },
            "/readyz": {
                "get": {
                    "tags": ["Health"],
                    "summary": "Readiness: store and broker reachable, not draining",
                    "responses": {
                        "200": _json_content("HealthBody", "Ready"),
                        "503": _json_content("HealthBody", "Not ready"),
                    },
                }
            },
        },
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "serviceToken": {"type": "http", "scheme": "bearer", "description": "CHAT_INTERNAL_TOKEN"},
            },
        },
    }
