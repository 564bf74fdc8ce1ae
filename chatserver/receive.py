"""The one receive path: a client frame is charged, parsed into a command, carried out or refused once."""

from __future__ import annotations

import logging

from chatserver import metrics
from chatserver.connection import Connection
from chatserver.protocol.errors import ChatError
from chatserver.protocol.inbound import Bucket, command_of, read_envelope, text_of_binary
from chatserver.protocol.vocabulary import CloseCode, ErrorReason
from chatserver.services import Services

log = logging.getLogger(__name__)

LIMITED_IN_A_ROW_BEFORE_CLOSE = 20
"""A socket that sends this many frames in a row while told to wait (TOO_MANY_REQUESTS) is closed (1008)."""
LOG_EVERY_NTH_REFUSAL = 100
"""A socket's first refusal is logged at INFO, then one in this many: a flood cannot flood the log too."""


class Receiver:
    """Carries out one socket's frames in order: each ends in a broadcast or in exactly one refusal."""

    __slots__ = ("_connection", "_services", "_limited_in_a_row", "_refusals")

    def __init__(self, connection: Connection, services: Services) -> None:
        self._connection = connection
        self._services = services
        self._limited_in_a_row = 0
        self._refusals = 0

    async def binary(self, payload: bytes) -> None:
        """A binary frame is read as the text frame it spells (some client libraries send JSON as binary)."""
        try:
            text = text_of_binary(payload)
        except ChatError as error:
            await self._refuse_unreadable(error)
            return
        await self.text(text)

    async def text(self, text: str) -> None:
        """Every frame pays before its ``data`` is checked: an unreadable one costs a message."""
        player, chat = self._connection.player, self._services.chat
        ref: str | None = None
        event = "invalid"
        try:
            try:
                envelope = read_envelope(text, self._services.settings.inbound_rules)
            except ChatError:
                await chat.charge(player, Bucket.MESSAGES)
                raise
            ref, event = envelope.ref, envelope.event.value
            metrics.FRAMES_IN.labels(event).inc()
            await chat.charge(player, envelope.bucket)
            await chat.execute(player, command_of(envelope, self._services.settings.inbound_rules))
            self._limited_in_a_row = 0
        except ChatError as error:
            error.ref = error.ref or ref
            self._refuse(error, event)
        except Exception:
            metrics.ERRORS.labels(ErrorReason.UNEXPECTED.value).inc()
            log.exception("unexpected failure handling a frame", extra={"player_id": player.id})
            self._connection.tell("error", self._connection.frames.error(_unexpected(ref)))

    async def _refuse_unreadable(self, error: ChatError) -> None:
        try:
            await self._services.chat.charge(self._connection.player, Bucket.MESSAGES)
        except ChatError as limited:
            error = limited
        self._refuse(error, "invalid")

    def _refuse(self, error: ChatError, event: str) -> None:
        """One error frame (none for a game socket), counted by reason and logged sampled."""
        metrics.ERRORS.labels(error.reason_label).inc()
        self._refusals += 1
        level = logging.INFO if self._refusals % LOG_EVERY_NTH_REFUSAL == 1 else logging.DEBUG
        log.log(
            level,
            "request refused",
            extra={"player_id": self._connection.player.id, "event": event, "reason": error.reason_label},
        )
        self._connection.tell("error", _error_text(self._connection, error))
        if error.reason_label != ErrorReason.TOO_MANY_REQUESTS.value:
            self._limited_in_a_row = 0
            return
        self._limited_in_a_row += 1
        if self._limited_in_a_row >= LIMITED_IN_A_ROW_BEFORE_CLOSE:
            log.warning(
                "closing a socket that keeps sending while rate-limited",
                extra={"player_id": self._connection.player.id},
            )
            self._connection.finish(CloseCode.TOO_MANY_REFUSALS)


def _unexpected(ref: str | None) -> ChatError:
    """UNEXPECTED: the one answer to a failure of ours, echoing the frame's ``ref`` when known."""
    unexpected = ChatError.of(ErrorReason.UNEXPECTED, None, "Internal server error")
    unexpected.ref = ref
    return unexpected


def _error_text(connection: Connection, error: ChatError) -> str | None:
    """The error frame; should an echoed value not encode, the plain UNEXPECTED frame (the socket lives on)."""
    try:
        return connection.frames.error(error)
    except Exception:
        log.exception("an error frame could not be encoded")
        return connection.frames.error(_unexpected(None))
