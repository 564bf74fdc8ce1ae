"""Inbound frames checked rule by rule, each failure with the reason code PROTOCOL.md §2 gives it.

Every check runs before any query, so values such as ``{"$ne": null}`` never reach a store.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import emoji as emoji_data

from chatserver.errors import ChatError
from chatserver.protocol import ErrorDetail, ErrorReason, InboundEvent
from chatserver.settings import Settings

_OBJECT_ID = re.compile(r"[0-9a-f]{24}", re.IGNORECASE)
_REF_MAX_CHARS = 64
# A ``\uD800``-``\uDFFF`` escape in the text: maybe half of a surrogate pair, maybe a lone one (checked then).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
# Echoed numbers stay short: a 4000-digit integer is not reflected back.
_ECHO_INT_MAX = 2**63


@dataclass(frozen=True)
class InboundFrame:
    """A frame whose envelope is sound: a known event with an object as ``data``."""

    event: InboundEvent
    data: dict[str, Any]
    ref: str | None
    received_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class MessageInput:
    content: str
    feeling: str | None


@dataclass(frozen=True)
class ReactionInput:
    message_id: str
    emoji: str | None


def parse_frame(text: str, settings: Settings) -> InboundFrame:
    """Decode one text frame and check its envelope: size, JSON object, ``ref``, ``event``, ``data``.

    An envelope error carries the frame's ``ref`` when it had a usable one, so the client can match it.
    """
    if _utf8_length_exceeds(text, settings.frame_max_bytes):
        raise ChatError("Frame too large")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        # RecursionError: nesting deeper than the decoder's limit (``[[[[...`` fits in a small frame).
        raise ChatError("Invalid JSON") from None
    if not isinstance(raw, dict) or _has_lone_surrogate(text, raw):
        raise ChatError("Invalid JSON")
    ref = raw.get("ref")
    if ref is not None and (not isinstance(ref, str) or len(ref) > _REF_MAX_CHARS):
        raise ChatError.of(
            ErrorReason.VALIDATION, "ref", f"ref must be a string of at most {_REF_MAX_CHARS} characters"
        )
    try:
        return InboundFrame(_known_event(raw.get("event")), _data_object(raw), ref)
    except ChatError as error:
        error.ref = ref
        raise


def _known_event(event: Any) -> InboundEvent:
    try:
        return InboundEvent(event)
    except ValueError:
        allowed = [e.value for e in InboundEvent]
        raise ChatError.of(
            ErrorReason.NOT_ALLOWED,
            "event",
            f"event must be one of {', '.join(allowed)}",
            value=_echo(event),
            additional={"allowed": allowed},
        ) from None


def _data_object(raw: dict[str, Any]) -> dict[str, Any]:
    data = raw.get("data")
    if data is None:
        raise ChatError.of(ErrorReason.REQUIRED, "data", "data is required")
    if not isinstance(data, dict):
        raise ChatError.of(ErrorReason.NOT_OBJECT, "data", "data must be an object")
    return data


def is_object_id(value: Any) -> bool:
    """A 24-hex ObjectId spelling, checked before any value reaches a query."""
    return isinstance(value, str) and _OBJECT_ID.fullmatch(value) is not None


def check_message(data: dict[str, Any], settings: Settings) -> MessageInput:
    """``content`` and ``feeling`` of a new message; every failing field is listed in the one error."""
    problems: list[ErrorDetail] = []
    content = _check_content(data.get("content"), settings, problems)
    feeling = _check_feeling(data.get("feeling"), settings, problems)
    if problems:
        raise ChatError(problems)
    assert content is not None
    return MessageInput(content, feeling)


def check_reaction(data: dict[str, Any]) -> ReactionInput:
    """``message_id`` (a 24-hex ObjectId) and ``emoji`` (one emoji, or empty/missing to remove)."""
    problems: list[ErrorDetail] = []
    message_id = data.get("message_id")
    if message_id is None:
        problems.append(_detail(ErrorReason.REQUIRED, "message_id", "message_id is required"))
    elif not is_object_id(message_id):
        problems.append(
            _detail(ErrorReason.VALIDATION, "message_id", "message_id must be a 24-character hex id", _echo(message_id))
        )
    emoji = data.get("emoji")
    if emoji is not None and emoji != "" and not (isinstance(emoji, str) and emoji_data.is_emoji(emoji)):
        problems.append(_detail(ErrorReason.VALIDATION, "emoji", "emoji must be a single emoji", _echo(emoji)))
    if problems:
        raise ChatError(problems)
    assert isinstance(message_id, str)  # is_object_id held
    return ReactionInput(message_id.lower(), emoji or None)


# What JavaScript's String.prototype.trim removes (WhiteSpace and LineTerminator), as the game backend
# trims: Python's str.strip() would also remove \x1c-\x1f and \x85 but keep U+FEFF.
ECMASCRIPT_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def _trim(text: str) -> str:
    return text.strip(ECMASCRIPT_WHITESPACE)


def _check_content(content: Any, settings: Settings, problems: list[ErrorDetail]) -> str | None:
    if content is None:
        problems.append(_detail(ErrorReason.REQUIRED, "content", "content is required"))
        return None
    if not isinstance(content, str):
        problems.append(_detail(ErrorReason.NOT_STRING, "content", "content must be a string", _echo(content)))
        return None
    trimmed = _trim(content)
    if not trimmed:
        problems.append(_detail(ErrorReason.REQUIRED, "content", "content must not be empty", _echo(content)))
        return None
    limit = settings.content_max_chars
    if len(trimmed) > limit:
        problems.append(
            _detail(
                ErrorReason.MORE_THAN_MAX,
                "content",
                f"content must be shorter than or equal to {limit} characters",
                additional={"max": limit},
            )
        )
        return None
    return trimmed


def _check_feeling(feeling: Any, settings: Settings, problems: list[ErrorDetail]) -> str | None:
    if feeling is None:
        return None
    if not isinstance(feeling, str):
        problems.append(_detail(ErrorReason.NOT_STRING, "feeling", "feeling must be a string", _echo(feeling)))
        return None
    if settings.feelings:
        by_folded = {allowed.casefold(): allowed for allowed in settings.feelings}
        spelled = by_folded.get(_trim(feeling).casefold())
        if spelled is None:
            problems.append(
                _detail(
                    ErrorReason.WRONG_ENUM,
                    "feeling",
                    f"feeling must be one of {', '.join(settings.feelings)}",
                    _echo(feeling),
                    additional={"allowed": list(settings.feelings)},
                )
            )
        return spelled
    label = _trim(feeling)
    if len(label) > settings.feeling_max_chars:
        limit = settings.feeling_max_chars
        problems.append(
            _detail(
                ErrorReason.MORE_THAN_MAX,
                "feeling",
                f"feeling must be shorter than or equal to {limit} characters",
                additional={"max": limit},
            )
        )
        return None
    return label or None


def _has_lone_surrogate(text: str, raw: Any) -> bool:
    """True when a decoded string holds half a surrogate pair (``"\\ud800"``): not Unicode text.

    Such a string can be neither stored as UTF-8 nor sent back in any frame, so it is refused as
    invalid JSON before it reaches a store (where it would poison every history read of the room)
    or an error frame (whose encoding would fail). Only frames that spell such an escape are walked.
    """
    if _SURROGATE_ESCAPE.search(text) is None:
        return False
    try:
        json.dumps(raw, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return True
    return False


def _utf8_length_exceeds(text: str, limit: int) -> bool:
    """Cheap for the common small frame: a string's UTF-8 size is between 1 and 4 bytes a character."""
    if len(text) > limit:
        return True
    return len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit


def _echo(value: Any) -> Any:
    """Echo short scalar values back in ``value``; objects and long strings are not reflected."""
    if isinstance(value, str):
        return value if len(value) <= 64 else None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _ECHO_INT_MAX:
        return None
    return value if isinstance(value, int | float | bool) else None


def _detail(reason: ErrorReason, field: str, message: str, value: Any = None, additional: Any = None) -> ErrorDetail:
    return ErrorDetail(reason=reason, field=field, value=value, message=message, additional=additional)
