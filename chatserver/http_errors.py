"""A ``ChatError`` as an HTTP answer: the game backend's error body, its status and ``Retry-After``."""

from __future__ import annotations

from starlette.responses import Response

from chatserver.protocol.errors import ChatError


def error_response(error: ChatError) -> Response:
    """The HTTP answer; a rate-limit refusal also says ``Retry-After`` in whole seconds."""
    headers = {}
    wait_ms = error.retry_after_ms
    if wait_ms is not None:
        headers["Retry-After"] = str(max(1, -(-wait_ms // 1000)))
    return Response(error.http_body(), status_code=error.status_code, media_type="application/json", headers=headers)
