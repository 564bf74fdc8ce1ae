"""HTTP endpoints: chat history, health, readiness, internal membership. Thin: parse, call the use case, shape."""

from __future__ import annotations

import hmac
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from chatserver import metrics
from chatserver.auth import token_from_request
from chatserver.chat import HISTORY_READS, HistoryRequest
from chatserver.http_errors import error_response
from chatserver.players import identify
from chatserver.protocol.errors import ChatError
from chatserver.protocol.models import ErrorDetail, HealthBody, MembershipChange
from chatserver.protocol.outbound import RENDERERS
from chatserver.protocol.vocabulary import ChatType, Dialect, ErrorReason, cut, is_object_id
from chatserver.services import Services

Body = TypeVar("Body", bound=BaseModel)


async def history(request: Request) -> Response:
    """``GET /chat/history?type=clan|global&limit=&page=&before=&dialect=``, newest first.

    ``dialect=game`` (the default in a game deployment) shapes every message as the shipped client reads it.
    """
    services: Services = request.app.state.services
    try:
        _, player = await identify(token_from_request(request.headers, {}), services.settings, services.players)
        await services.chat.check_rate(player, HISTORY_READS, services.settings.history_rate)
        history_request = _history_request(request, services)
        dialect = _dialect_param(request.query_params.get("dialect"), services.settings.dialect)
        page = await services.chat.history(player, history_request)
    except ChatError as error:
        return refused(error)
    return _json(RENDERERS[dialect].history(page))


async def metrics_text(request: Request) -> Response:
    """Prometheus text exposition of this worker's metrics."""
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return _json(HealthBody(status="ok").model_dump_json())


async def readyz(request: Request) -> Response:
    """Readiness: store and broker answer and the worker is not draining; 503 otherwise."""
    services: Services = request.app.state.services
    checks = await services.ready()
    if all(checks.values()):
        return _json(HealthBody(status="ok", checks=checks).model_dump_json())
    status = "draining" if not checks["accepting"] else "unavailable"
    return _json(HealthBody(status=status, checks=checks).model_dump_json(), status_code=503)


def refused(error: ChatError) -> Response:
    """The HTTP error answer, counted by reason."""
    metrics.ERRORS.labels(error.reason_label).inc()
    return error_response(error)


MAX_PAGE = 1_000_000
"""Deeper pages are refused: an offset must fit MongoDB's 64-bit skip, and ``before`` walks deep history."""


def _history_request(request: Request, services: Services) -> HistoryRequest:
    params = request.query_params
    settings = services.settings
    raw_type = params.get("type", ChatType.GLOBAL.value)
    try:
        chat = ChatType(raw_type)
    except ValueError:
        raise ChatError.of(
            ErrorReason.WRONG_ENUM,
            "type",
            "type must be clan or global",
            cut(raw_type),  # a 10,000-character value is not reflected whole
            {"allowed": ["clan", "global"]},
        ) from None
    limit = _whole_number(params.get("limit"), "limit", settings.history_default_limit)
    if limit < 1:
        limit = settings.history_default_limit
    page = _whole_number(params.get("page"), "page", 1)
    if page < 1:
        raise ChatError.of(ErrorReason.VALIDATION, "page", "page must be 1 or more", page)
    if page > MAX_PAGE:
        raise ChatError.of(ErrorReason.MORE_THAN_MAX, "page", f"page must be at most {MAX_PAGE}", page)
    before = params.get("before")
    if before is not None and not is_object_id(before):
        raise ChatError.of(ErrorReason.VALIDATION, "before", "before must be a 24-character hex id", cut(before))
    return HistoryRequest(chat, min(limit, settings.history_max_limit), page, before and before.lower())


def _dialect_param(raw: str | None, default: Dialect) -> Dialect:
    if raw is None or raw == "":
        return default
    try:
        return Dialect(raw)
    except ValueError:
        allowed = [dialect.value for dialect in Dialect]
        raise ChatError.of(
            ErrorReason.WRONG_ENUM, "dialect", "dialect must be wiki or game", cut(raw), {"allowed": allowed}
        ) from None


def _whole_number(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ChatError.of(ErrorReason.VALIDATION, name, f"{name} must be a whole number", cut(raw)) from None


def _json(body: str, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type="application/json")


async def internal_membership(request: Request) -> Response:
    """``POST /internal/membership``: the game backend says a player left or joined a clan.

    Guarded by the service token ``CHAT_INTERNAL_TOKEN`` (compared in constant time); answers 202
    with the change once it is published to every worker.
    """
    services: Services = request.app.state.services
    try:
        _check_service_token(request, services.settings.internal_token)
        change = parsed_body(MembershipChange, await request.body())
        await services.membership.publish(change)
    except ChatError as error:
        return refused(error)
    return _json(change.model_dump_json(), status_code=202)


def parsed_body(model: type[Body], body: bytes) -> Body:
    """A JSON request body as ``model``; each bad field is one VALIDATION error object naming it."""
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise ChatError(
            [
                ErrorDetail(
                    reason=ErrorReason.VALIDATION,
                    field=".".join(str(part) for part in problem["loc"]) or None,
                    message=problem["msg"],
                )
                for problem in error.errors(include_url=False)
            ]
        ) from None


def _check_service_token(request: Request, expected: str | None) -> None:
    if expected is None:
        raise ChatError.of(
            ErrorReason.NOT_AUTHORIZED, "token", "The internal API is disabled: CHAT_INTERNAL_TOKEN is not set"
        )
    presented = token_from_request(request.headers, {})
    if presented is None:
        raise ChatError.of(ErrorReason.NOT_AUTHENTICATED, "token", "The service token is not provided")
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise ChatError.of(ErrorReason.NOT_AUTHORIZED, "token", "The service token is not valid")
