"""``/chat/moderation/``: the moderator API. Thin: authorise, parse, call ``ModerationService``, shape.

Authorised by a JWT whose ``roles`` claim holds ``moderator`` (the game backend mints them) or by the
service token ``CHAT_INTERNAL_TOKEN``; a missing or invalid token is 401, a valid player token
without the role 403, each in the HTTP error body.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from chatserver.auth import authenticate, token_from_request
from chatserver.http import parsed_body, refused
from chatserver.protocol import ErrorReason
from chatserver.protocol.errors import ChatError
from chatserver.protocol.models import MuteList, MuteRequest, ReportList
from chatserver.protocol.vocabulary import cut, is_object_id
from chatserver.services import Services
from chatserver.settings import Settings

MODERATOR_ROLE = "moderator"
SERVICE_MODERATOR = "service"
REPORTS_DEFAULT_LIMIT = 20
REPORTS_MAX_LIMIT = 100


def moderator_of(request: Request, settings: Settings) -> str:
    """Who is acting: the moderator's player id, or ``service`` for the service token."""
    presented = token_from_request(request.headers, {})
    expected = settings.internal_token
    if presented is not None and expected is not None and hmac.compare_digest(presented.encode(), expected.encode()):
        return SERVICE_MODERATOR
    identity = authenticate(presented, settings)
    if MODERATOR_ROLE not in identity.roles:
        raise ChatError.of(ErrorReason.NOT_AUTHORIZED, "token", "The moderator role is required")
    return identity.player_id


async def delete_message(request: Request) -> Response:
    """``DELETE /chat/moderation/messages/{message_id}``: 204 once the message is a tombstone everywhere."""
    services: Services = request.app.state.services
    try:
        moderator = moderator_of(request, services.settings)
        message_id: str = request.path_params["message_id"]
        if not is_object_id(message_id):
            raise ChatError.of(
                ErrorReason.VALIDATION, "message_id", "message_id must be a 24-character hex id", cut(message_id)
            )
        await services.moderation.delete_message(moderator, message_id.lower())
    except ChatError as error:
        return refused(error)
    return Response(status_code=204)


async def create_mute(request: Request) -> Response:
    """``POST /chat/moderation/mutes``: 201 with the mute, in force on every replica from now on."""
    services: Services = request.app.state.services
    try:
        moderator = moderator_of(request, services.settings)
        mute = await services.moderation.mute(moderator, parsed_body(MuteRequest, await request.body()))
    except ChatError as error:
        return refused(error)
    return _json(mute.model_dump_json(), status_code=201)


async def delete_mute(request: Request) -> Response:
    """``DELETE /chat/moderation/mutes/{player_id}``: 204, or 404 when no mute is in force."""
    services: Services = request.app.state.services
    try:
        moderator = moderator_of(request, services.settings)
        await services.moderation.unmute(moderator, request.path_params["player_id"])
    except ChatError as error:
        return refused(error)
    return Response(status_code=204)


async def list_mutes(request: Request) -> Response:
    """``GET /chat/moderation/mutes``: every mute in force."""
    services: Services = request.app.state.services
    try:
        moderator_of(request, services.settings)
        mutes = await services.moderation.mutes()
    except ChatError as error:
        return refused(error)
    return _json(MuteList(mutes=mutes).model_dump_json())


async def list_reports(request: Request) -> Response:
    """``GET /chat/moderation/reports?limit=``: the most recent reports, newest first."""
    services: Services = request.app.state.services
    try:
        moderator_of(request, services.settings)
        reports = await services.moderation.reports(_limit(request.query_params.get("limit")))
    except ChatError as error:
        return refused(error)
    return _json(ReportList(reports=reports).model_dump_json())


def _limit(raw: str | None) -> int:
    """1..``REPORTS_MAX_LIMIT``, clamped as history's ``limit`` is; not a whole number is VALIDATION."""
    if raw is None or raw == "":
        return REPORTS_DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise ChatError.of(ErrorReason.VALIDATION, "limit", "limit must be a whole number", cut(raw)) from None
    return REPORTS_DEFAULT_LIMIT if limit < 1 else min(limit, REPORTS_MAX_LIMIT)


def _json(body: str, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type="application/json")
