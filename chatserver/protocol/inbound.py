"""Inbound frames: one text frame parsed once into a typed command, each failure with its reason code.

Every check runs before any query, so values such as ``{"$ne": null}`` never reach a store. The
envelope (``event``, ``data``, ``ref``) is read first so the sender's bucket can be charged before the
``data`` rules run, as the receive path does.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import emoji as emoji_data

from chatserver.protocol.errors import ChatError
from chatserver.protocol.models import ErrorDetail
from chatserver.protocol.vocabulary import (
    ECHO_MAX_CHARS,
    MOOD_OF_EMOJI,
    RESPONSE_TYPE_MAX_CHARS,
    ChatType,
    ErrorReason,
    InboundEvent,
    echo,
    is_object_id,
    mood_named,
)

# A ``\uD800``-``\uDFFF`` escape in the text: maybe half of a surrogate pair, maybe a lone one (checked then).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class Bucket(StrEnum):
    """The rate-limit bucket a frame is charged to; a frame that names no known event costs a message.

    Edits and deletions cost a message; reports have a bucket of their own.
    """

    MESSAGES = "messages"
    REACTIONS = "reactions"
    REPORTS = "reports"


@dataclass(frozen=True)
class InboundRules:
    """What a deployment accepts: sizes and the feeling, reaction and quick-response vocabularies (empty: free)."""

    frame_max_bytes: int = 8 * 1024
    content_max_chars: int = 256
    feeling_max_chars: int = 32
    feelings: tuple[str, ...] = ()
    reactions: tuple[str, ...] = ()
    response_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class FrameEnvelope:
    """A frame whose envelope is sound: a known event with an object as ``data``."""

    event: InboundEvent
    data: dict[str, Any]
    ref: str | None
    received_at: float = field(default_factory=time.time)

    @property
    def chat(self) -> ChatType:
        return _CHAT_OF_EVENT[self.event]

    @property
    def bucket(self) -> Bucket:
        if self.event in _REACTION_EVENTS:
            return Bucket.REACTIONS
        return Bucket.REPORTS if self.event in _REPORT_EVENTS else Bucket.MESSAGES


@dataclass(frozen=True)
class PostMessage:
    """Post ``content`` (trimmed) with an optional ``feeling`` and quick response to the room ``chat`` names.

    A quick response sent without ``content`` has its ``responseType`` name as ``content``.
    """

    chat: ChatType
    content: str
    feeling: str | None
    ref: str | None = None
    received_at: float = field(default_factory=time.time)
    response_type: str | None = None


@dataclass(frozen=True)
class React:
    """Set the sender's reaction on ``message_id`` to ``emoji``; ``None`` removes it."""

    chat: ChatType
    message_id: str
    emoji: str | None
    ref: str | None = None
    received_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class EditMessage:
    """Replace the content of the sender's own message ``message_id`` with ``content`` (trimmed)."""

    chat: ChatType
    message_id: str
    content: str
    ref: str | None = None
    received_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class DeleteMessage:
    """Delete the sender's own message ``message_id``."""

    chat: ChatType
    message_id: str
    ref: str | None = None
    received_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ReportMessage:
    """Report ``message_id`` to the moderators, with an optional ``reason`` (trimmed)."""

    chat: ChatType
    message_id: str
    reason: str | None
    ref: str | None = None
    received_at: float = field(default_factory=time.time)


Command = PostMessage | React | EditMessage | DeleteMessage | ReportMessage

REPORT_REASON_MAX_CHARS = 256

_CHAT_OF_EVENT = {event: ChatType.CLAN if event.value.startswith("clan") else ChatType.GLOBAL for event in InboundEvent}
_REACTION_EVENTS = {InboundEvent.CLAN_MESSAGE_REACTION, InboundEvent.GLOBAL_MESSAGE_REACTION}
_EDIT_EVENTS = {InboundEvent.CLAN_MESSAGE_EDIT, InboundEvent.GLOBAL_MESSAGE_EDIT}
_DELETE_EVENTS = {InboundEvent.CLAN_MESSAGE_DELETE, InboundEvent.GLOBAL_MESSAGE_DELETE}
_REPORT_EVENTS = {InboundEvent.CLAN_MESSAGE_REPORT, InboundEvent.GLOBAL_MESSAGE_REPORT}


def text_of_binary(payload: bytes) -> str:
    """A binary frame's payload as the text frame it stands for; invalid UTF-8 is "Invalid JSON"."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ChatError("Invalid JSON") from None


def command_of(envelope: FrameEnvelope, rules: InboundRules) -> Command:
    """The typed command a sound envelope asks for; raises the one ``ChatError`` its ``data`` earns."""
    chat, data, ref, received_at = envelope.chat, envelope.data, envelope.ref, envelope.received_at
    try:
        if envelope.event in _REACTION_EVENTS:
            message_id, emoji = _check_reaction(data, rules)
            return React(chat, message_id, emoji, ref, received_at)
        if envelope.event in _EDIT_EVENTS:
            message_id, content = _check_edit(data, rules)
            return EditMessage(chat, message_id, content, ref, received_at)
        if envelope.event in _DELETE_EVENTS:
            return DeleteMessage(chat, _check_message_id_only(data), ref, received_at)
        if envelope.event in _REPORT_EVENTS:
            message_id, reason = _check_report(data)
            return ReportMessage(chat, message_id, reason, ref, received_at)
        content, feeling, response_type = _check_message(data, rules)
        return PostMessage(chat, content, feeling, ref, received_at, response_type)
    except ChatError as error:
        error.ref = envelope.ref
        raise


def read_envelope(text: str, rules: InboundRules) -> FrameEnvelope:
    """Decode one text frame and check its envelope: size, JSON object, ``ref``, ``event``, ``data``.

    An envelope error carries the frame's ``ref`` when it had a usable one, so the client can match it.
    """
    if _utf8_length_exceeds(text, rules.frame_max_bytes):
        raise ChatError("Frame too large")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        # RecursionError: nesting deeper than the decoder's limit (``[[[[...`` fits in a small frame).
        raise ChatError("Invalid JSON") from None
    if not isinstance(raw, dict) or _has_lone_surrogate(text, raw):
        raise ChatError("Invalid JSON")
    ref = raw.get("ref")
    if ref is not None and (not isinstance(ref, str) or len(ref) > ECHO_MAX_CHARS):
        raise ChatError.of(
            ErrorReason.VALIDATION, "ref", f"ref must be a string of at most {ECHO_MAX_CHARS} characters"
        )
    try:
        return FrameEnvelope(_known_event(raw.get("event")), _data_object(raw), ref)
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
            value=echo(event),
            additional={"allowed": allowed},
        ) from None


def _data_object(raw: dict[str, Any]) -> dict[str, Any]:
    data = raw.get("data")
    if data is None:
        raise ChatError.of(ErrorReason.REQUIRED, "data", "data is required")
    if not isinstance(data, dict):
        raise ChatError.of(ErrorReason.NOT_OBJECT, "data", "data must be an object")
    return data


def _check_message(data: dict[str, Any], rules: InboundRules) -> tuple[str, str | None, str | None]:
    """``content``, ``feeling`` and ``responseType`` of a new message; every failing field in the one error.

    A quick response may come without ``content`` (the game's #1000 payload): its name is the content.
    """
    problems: list[ErrorDetail] = []
    response_type = _check_response_type(data.get("responseType"), rules, problems)
    content: str | None = None
    if data.get("content") is not None or data.get("responseType") is None:
        content = _check_content(data.get("content"), rules, problems)
    elif response_type is not None:
        content = _check_content(response_type, rules, problems)
    feeling = _check_feeling(data.get("feeling"), rules, problems)
    if problems:
        raise ChatError(problems)
    assert content is not None
    return content, feeling, response_type


def _check_response_type(label: Any, rules: InboundRules, problems: list[ErrorDetail]) -> str | None:
    """One of ``CHAT_RESPONSE_TYPES`` (matched case-insensitively, kept in the list's spelling), or with no
    list any label of at most ``RESPONSE_TYPE_MAX_CHARS``; absent or null: no quick response."""
    if label is None:
        return None
    if not isinstance(label, str):
        problems.append(_detail(ErrorReason.NOT_STRING, "responseType", "responseType must be a string", echo(label)))
        return None
    if rules.response_types:
        spelled = {allowed.casefold(): allowed for allowed in rules.response_types}.get(_trim(label).casefold())
        if spelled is None:
            problems.append(
                _detail(
                    ErrorReason.WRONG_ENUM,
                    "responseType",
                    f"responseType must be one of {', '.join(rules.response_types)}",
                    echo(label),
                    additional={"allowed": list(rules.response_types)},
                )
            )
        return spelled
    trimmed = _trim(label)
    if not trimmed:
        problems.append(_detail(ErrorReason.REQUIRED, "responseType", "responseType must not be empty", echo(label)))
        return None
    if len(trimmed) > RESPONSE_TYPE_MAX_CHARS:
        problems.append(
            _detail(
                ErrorReason.MORE_THAN_MAX,
                "responseType",
                f"responseType must be shorter than or equal to {RESPONSE_TYPE_MAX_CHARS} characters",
                additional={"max": RESPONSE_TYPE_MAX_CHARS},
            )
        )
        return None
    return trimmed


def _check_reaction(data: dict[str, Any], rules: InboundRules) -> tuple[str, str | None]:
    """``message_id`` (a 24-hex ObjectId) and ``emoji`` (empty or missing removes the reaction)."""
    problems: list[ErrorDetail] = []
    message_id = _check_message_id(data.get("message_id"), problems)
    emoji = _check_emoji(data.get("emoji"), rules, problems)
    if problems:
        raise ChatError(problems)
    assert message_id is not None
    return message_id, emoji


def _check_edit(data: dict[str, Any], rules: InboundRules) -> tuple[str, str]:
    """``message_id`` and the new ``content``, by a new message's rules; every failing field listed."""
    problems: list[ErrorDetail] = []
    message_id = _check_message_id(data.get("message_id"), problems)
    content = _check_content(data.get("content"), rules, problems)
    if problems:
        raise ChatError(problems)
    assert message_id is not None and content is not None
    return message_id, content


def _check_message_id_only(data: dict[str, Any]) -> str:
    problems: list[ErrorDetail] = []
    message_id = _check_message_id(data.get("message_id"), problems)
    if problems:
        raise ChatError(problems)
    assert message_id is not None
    return message_id


def _check_report(data: dict[str, Any]) -> tuple[str, str | None]:
    """``message_id`` and an optional ``reason``: a string, trimmed, at most ``REPORT_REASON_MAX_CHARS``."""
    problems: list[ErrorDetail] = []
    message_id = _check_message_id(data.get("message_id"), problems)
    reason = data.get("reason")
    if reason is not None and not isinstance(reason, str):
        problems.append(_detail(ErrorReason.NOT_STRING, "reason", "reason must be a string", echo(reason)))
    elif isinstance(reason, str) and len(_trim(reason)) > REPORT_REASON_MAX_CHARS:
        problems.append(
            _detail(
                ErrorReason.MORE_THAN_MAX,
                "reason",
                f"reason must be shorter than or equal to {REPORT_REASON_MAX_CHARS} characters",
                additional={"max": REPORT_REASON_MAX_CHARS},
            )
        )
    if problems:
        raise ChatError(problems)
    assert message_id is not None
    return message_id, (_trim(reason) or None) if isinstance(reason, str) else None


def _check_message_id(message_id: Any, problems: list[ErrorDetail]) -> str | None:
    """A 24-hex ObjectId, lower-cased; ``None`` (with the problem listed) otherwise."""
    if message_id is None:
        problems.append(_detail(ErrorReason.REQUIRED, "message_id", "message_id is required"))
        return None
    if not is_object_id(message_id):
        problems.append(
            _detail(ErrorReason.VALIDATION, "message_id", "message_id must be a 24-character hex id", echo(message_id))
        )
        return None
    assert isinstance(message_id, str)  # is_object_id held
    return message_id.lower()


def _check_emoji(emoji: Any, rules: InboundRules, problems: list[ErrorDetail]) -> str | None:
    """With ``CHAT_REACTIONS`` set, one of that list (a Unicode emoji mapped to its Mood when listed);
    otherwise a single emoji or one of the game's Mood names (the shipped client reacts with ``"Love"``)."""
    if emoji is None or emoji == "":
        return None
    if isinstance(emoji, str) and rules.reactions:
        by_folded = {allowed.casefold(): allowed for allowed in rules.reactions}
        spelled = by_folded.get(emoji.strip().casefold()) or by_folded.get(MOOD_OF_EMOJI.get(emoji, "").casefold())
        if spelled is not None:
            return spelled
        problems.append(
            _detail(
                ErrorReason.WRONG_ENUM,
                "emoji",
                f"emoji must be one of {', '.join(rules.reactions)}",
                echo(emoji),
                additional={"allowed": list(rules.reactions)},
            )
        )
        return None
    if isinstance(emoji, str) and emoji_data.is_emoji(emoji):
        return emoji
    mood = mood_named(emoji) if isinstance(emoji, str) else None
    if mood is None:
        problems.append(_detail(ErrorReason.VALIDATION, "emoji", "emoji must be a single emoji", echo(emoji)))
    return mood


# What JavaScript's String.prototype.trim removes (WhiteSpace and LineTerminator), as the game backend
# trims: Python's str.strip() would also remove \x1c-\x1f and \x85 but keep U+FEFF.
ECMASCRIPT_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)


# Removed from every text a client sends: C0 and C1 controls but tab, line feed and carriage return
# (ANSI escapes lose their ESC and become inert text), and the bidi embeddings, overrides and
# isolates (U+202A-U+202E, U+2066-U+2069) that reorder what others see (a file name shown
# reversed, a spoofed link). Left-to-right and right-to-left marks stay: right-to-left text needs them.
_REMOVED_CONTROLS = dict.fromkeys(
    [
        *range(0x00, 0x09),
        0x0B,
        0x0C,
        *range(0x0E, 0x20),
        *range(0x7F, 0xA0),
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
)
# A text made only of these shows nothing: zero-width spaces and joiners, lone combining marks, spaces.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"})


def _trim(text: str) -> str:
    """The text without removed controls, trimmed as JavaScript's ``trim()``; empty when nothing is visible."""
    trimmed = text.translate(_REMOVED_CONTROLS).strip(ECMASCRIPT_WHITESPACE)
    if all(unicodedata.category(char) in _INVISIBLE_CATEGORIES for char in trimmed):
        return ""
    return trimmed


def _check_content(content: Any, rules: InboundRules, problems: list[ErrorDetail]) -> str | None:
    if content is None:
        problems.append(_detail(ErrorReason.REQUIRED, "content", "content is required"))
        return None
    if not isinstance(content, str):
        problems.append(_detail(ErrorReason.NOT_STRING, "content", "content must be a string", echo(content)))
        return None
    trimmed = _trim(content)
    if not trimmed:
        problems.append(_detail(ErrorReason.REQUIRED, "content", "content must not be empty", echo(content)))
        return None
    limit = rules.content_max_chars
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


def _check_feeling(feeling: Any, rules: InboundRules, problems: list[ErrorDetail]) -> str | None:
    if feeling is None:
        return None
    if not isinstance(feeling, str):
        problems.append(_detail(ErrorReason.NOT_STRING, "feeling", "feeling must be a string", echo(feeling)))
        return None
    if rules.feelings:
        by_folded = {allowed.casefold(): allowed for allowed in rules.feelings}
        spelled = by_folded.get(_trim(feeling).casefold())
        if spelled is None:
            problems.append(
                _detail(
                    ErrorReason.WRONG_ENUM,
                    "feeling",
                    f"feeling must be one of {', '.join(rules.feelings)}",
                    echo(feeling),
                    additional={"allowed": list(rules.feelings)},
                )
            )
        return spelled
    label = _trim(feeling)
    if len(label) > rules.feeling_max_chars:
        limit = rules.feeling_max_chars
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


def _detail(reason: ErrorReason, field: str, message: str, value: Any = None, additional: Any = None) -> ErrorDetail:
    return ErrorDetail(reason=reason, field=field, value=value, message=message, additional=additional)
