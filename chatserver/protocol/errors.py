"""Failures as values: ``ChatError`` carries error objects, rendered as one error frame or one HTTP error body."""

from __future__ import annotations

from typing import Any

from chatserver.protocol.models import ErrorDetail, ErrorFrame, HttpErrorBody
from chatserver.protocol.vocabulary import ErrorReason

NOT_FOUND_MESSAGE = "Could not find any objects with specified id"

_STATUS_BY_REASON: dict[ErrorReason, int] = {
    ErrorReason.NOT_FOUND: 404,
    ErrorReason.REQUIRED: 400,
    ErrorReason.NOT_ALLOWED: 400,
    ErrorReason.VALIDATION: 400,
    ErrorReason.NOT_STRING: 400,
    ErrorReason.NOT_OBJECT: 400,
    ErrorReason.WRONG_ENUM: 400,
    ErrorReason.MORE_THAN_MAX: 400,
    ErrorReason.NOT_AUTHORIZED: 403,
    ErrorReason.AUTHENTICATION_FAILED: 401,
    ErrorReason.NOT_AUTHENTICATED: 401,
    ErrorReason.TOO_MANY_REQUESTS: 429,
    ErrorReason.NOT_AVAILABLE: 503,
    ErrorReason.UNEXPECTED: 500,
}


class ChatError(Exception):
    """A request failed for a reason the client should be told about.

    ``details`` is a list of error objects, or a plain description for errors with no field
    (``{"error": "Invalid JSON"}``).
    """

    def __init__(self, details: list[ErrorDetail] | str, ref: str | None = None) -> None:
        super().__init__(details if isinstance(details, str) else "; ".join(d.message or "" for d in details))
        self.details = details
        self.ref = ref

    @classmethod
    def of(
        cls,
        reason: ErrorReason,
        field: str | None,
        message: str,
        value: Any = None,
        additional: Any = None,
    ) -> ChatError:
        """One error object; the common case."""
        return cls([ErrorDetail(reason=reason, field=field, value=value, message=message, additional=additional)])

    @property
    def status_code(self) -> int:
        """HTTP status of the first error object, as the game backend's ``determineStatus``."""
        if isinstance(self.details, str):
            return 400
        return _STATUS_BY_REASON.get(self.details[0].reason, 500)

    @property
    def reason_label(self) -> str:
        """The first reason, or ``INVALID_FRAME`` for the plain-text errors, for metrics and logs."""
        return "INVALID_FRAME" if isinstance(self.details, str) else self.details[0].reason.value

    def frame_text(self) -> str:
        """The single WebSocket error frame for this failure, echoing the request's ``ref``."""
        return ErrorFrame(error=self.details, ref=self.ref).model_dump_json()

    def http_body(self) -> bytes:
        details = (
            self.details
            if not isinstance(self.details, str)
            else [ErrorDetail(reason=ErrorReason.VALIDATION, message=self.details)]
        )
        return HttpErrorBody(errors=details, statusCode=self.status_code).model_dump_json().encode()

    @property
    def retry_after_ms(self) -> int | None:
        """A rate-limit refusal's wait, from ``additional.retry_after_ms``."""
        if not isinstance(self.details, str) and isinstance(self.details[0].additional, dict):
            wait_ms = self.details[0].additional.get("retry_after_ms")
            if isinstance(wait_ms, int):
                return wait_ms
        return None


def not_found(message_id: Any) -> ChatError:
    """The one answer for "no such message here", whether it is missing or belongs to another room."""
    return ChatError.of(ErrorReason.NOT_FOUND, "_id", NOT_FOUND_MESSAGE, value=message_id)


def not_available(what: str) -> ChatError:
    return ChatError.of(ErrorReason.NOT_AVAILABLE, None, f"{what} is not available right now; try again shortly")
