"""HTTP endpoints: chat history, health, readiness, internal membership. Thin: parse, call the use case, shape."""

from __future__ import annotations

import hmac

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from chatserver import metrics
from chatserver.auth import token_from_request
from chatserver.chat import HistoryRequest
from chatserver.errors import ChatError
from chatserver.players import identify
from chatserver.protocol import ChatType, ErrorDetail, ErrorReason, HealthBody, MembershipChange
from chatserver.services import Services
from chatserver.validation import is_object_id


async def history(request: Request) -> Response:
    """``GET /chat/history?type=clan|global&limit=&page=&before=``, newest first."""
    services: Services = request.app.state.services
    try:
        _, player = await identify(token_from_request(request.headers, {}), services.settings, services.players)
        await services.chat.check_rate(player, "history reads", services.settings.history_rate)
        page = await services.chat.history(player, _history_request(request, services))
    except ChatError as error:
        return refused(error)
    return _json(page.model_dump_json(by_alias=True))


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
    return error.http_response()


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
            raw_type[:64],  # echoed cut, as ``since`` is: a 10,000-character value is not reflected whole
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
        raise ChatError.of(ErrorReason.VALIDATION, "before", "before must be a 24-character hex id", before[:64])
    return HistoryRequest(chat, min(limit, settings.history_max_limit), page, before and before.lower())


def _whole_number(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ChatError.of(ErrorReason.VALIDATION, name, f"{name} must be a whole number", raw[:64]) from None


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
        change = _membership_change(await request.body())
        await services.membership.publish(change)
    except ChatError as error:
        return refused(error)
    return _json(change.model_dump_json(), status_code=202)


def _membership_change(body: bytes) -> MembershipChange:
    """The request body as a change; each bad field is one error object naming it."""
    try:
        return MembershipChange.model_validate_json(body)
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
