"""How far behind this worker's event loop runs, so new sockets can be refused while it is too far behind.

A worker that takes on more handshakes than it can finish makes every one of them late: clients
give up waiting, retry, and each retry is more work (bench/README.md, "The reconnect storm"). A
timer that should fire every ``INTERVAL_SECONDS`` measures how late it runs; while that lag is over
``CHAT_ADMISSION_MAX_LAG_MS`` a handshake is refused at once with 503, before the token check and a
resume's store reads, and the client backs off and tries again, maybe elsewhere.
"""

from __future__ import annotations

import asyncio

INTERVAL_SECONDS = 0.05


class LoopLag:
    """The lag of the last tick of a periodic timer, in seconds (0 before the first)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._due = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._schedule(asyncio.get_running_loop())

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = loop.time() + INTERVAL_SECONDS
        self._timer = loop.call_at(self._due, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.seconds = max(loop.time() - self._due, 0.0)
        self._schedule(loop)
