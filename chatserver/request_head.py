"""A bounded request head: uvicorn's httptools protocol with a size cap and a deadline in front of the parser.

httptools (llhttp) has no limit on a request line or header block, and uvicorn adds none: an endless
head grows the worker without bound and is never answered. Here every head is fed to the parser at
most ``max_bytes`` at a time and refused with 414 (request line) or 431 (headers) once it is longer;
a head that has not arrived within ``timeout_seconds`` of the connection or of its first byte gets
408, and a connection opening while ``max_pending`` heads are being read gets 503, so heads in
flight hold at most ``max_pending`` x ``max_bytes`` whatever the file descriptor limit. A refusal is
answered, half-closed (the client reads the answer and EOF) and closed a moment later without
reading any more. Why and what the proxy still adds: SECURITY.md.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from chatserver.metrics import HEADS_REFUSED
from chatserver.protocol import ErrorDetail, ErrorReason, HttpErrorBody

MAX_HEADERS = 100
"""Below websockets' own 128, so an upgrade never reaches a parser limit we do not answer ourselves."""

_LINGER_SECONDS = 1.0


@dataclass(frozen=True)
class HeadLimits:
    """How long (bytes) and how slow (seconds) a request head may be, and how many may be read at once."""

    max_bytes: int
    timeout_seconds: float
    max_pending: int


class PendingHeads:
    """Heads being read on this worker now; each holds up to ``max_bytes`` until its deadline."""

    def __init__(self) -> None:
        self.count = 0


class _TooManyHeaders(Exception):
    """Raised inside the parser's header callback; httptools turns it into a parser error we answer."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` whose heads are bounded in size and time; everything after the head is unchanged."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HeadLimits,
        pending: PendingHeads,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._limits = limits
        self._pending = pending
        self._head_bytes: int | None = 0  # bytes of the head being read; None between heads
        self._request_line_done = False
        self._header_count = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False
        self._refusal: tuple[int, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self._pending.count >= self._limits.max_pending:
            self._refuse(503, "Too many connections are opening at once; try again shortly", linger=False)
            return
        self._start_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        while data:
            if self._head_bytes is None:
                # A body, or the tail of one: a piece of at most max_bytes bounds what the next head can hide in it.
                piece, data = data[: self._limits.max_bytes], data[self._limits.max_bytes :]
            else:
                room = self._limits.max_bytes - self._head_bytes
                if room <= 0:
                    self._refuse_oversized()
                    return
                piece, data = data[:room], data[room:]
                self._head_bytes += len(piece)
                if not self._request_line_done and b"\n" in piece:
                    self._request_line_done = True
            super().data_received(piece)
            if self._refused or self.transport.is_closing() or self.transport.get_protocol() is not self:
                return  # refused, failed, or upgraded to a WebSocket (which reads the rest itself)
        if self._head_bytes is not None and self._head_bytes >= self._limits.max_bytes:
            self._refuse_oversized()

    # Parser callbacks: where a head starts and ends.

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:
            self._start_clock()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > MAX_HEADERS:
            self._refusal = (431, f"A request may have at most {MAX_HEADERS} header fields")
            raise _TooManyHeaders
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        self._stop_clock()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_bytes = 0
        self._request_line_done = False
        self._header_count = 0

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to any parser error; a header count we refused is answered as such."""
        status, message = self._refusal or (400, "The request is not valid HTTP/1.1")
        self._refuse(status, message)

    # Refusals.

    def _refuse_oversized(self) -> None:
        if self._request_line_done:
            self._refuse(431, f"The request head may be at most {self._limits.max_bytes} bytes")
        else:
            self._refuse(414, f"The request line may be at most {self._limits.max_bytes} bytes")

    def _on_deadline(self) -> None:
        self._stop_clock()
        if self._head_bytes is not None and not self.transport.is_closing():
            self._refuse(408, f"The request head must arrive within {self._limits.timeout_seconds:g} seconds")

    def _refuse(self, status: int, message: str, *, linger: bool = True) -> None:
        """Answer, send EOF so the client reads the answer whole, and close without reading the rest.

        Without ``linger`` (nothing was read yet, so nothing can reset the answer) the close is at once.
        """
        self._refused = True
        self._stop_clock()
        HEADS_REFUSED.labels(str(status)).inc()
        self.logger.debug("request head refused with %d: %s", status, message, extra={"client": self.client})
        body = (
            HttpErrorBody(
                errors=[ErrorDetail(reason=_REASON_BY_STATUS.get(status, ErrorReason.VALIDATION), message=message)],
                statusCode=status,
            )
            .model_dump_json()
            .encode()
        )
        head = [STATUS_LINE[status]]
        head.extend(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers)
        head.append(b"content-type: application/json\r\n")
        head.append(b"content-length: %d\r\n" % len(body))
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        if not linger:
            self.transport.close()
            return
        self.transport.pause_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_SECONDS, self.transport.close)

    def _start_clock(self) -> None:
        """A head is being read: it counts as pending and must be complete by the deadline."""
        self._pending.count += 1
        self._deadline = self.loop.call_later(self._limits.timeout_seconds, self._on_deadline)

    def _stop_clock(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
            self._pending.count -= 1


_REASON_BY_STATUS = {
    408: ErrorReason.REQUIRED,
    414: ErrorReason.MORE_THAN_MAX,
    431: ErrorReason.MORE_THAN_MAX,
    503: ErrorReason.NOT_AVAILABLE,
}
