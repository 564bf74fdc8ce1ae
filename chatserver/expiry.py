"""Close wiki sockets when their tokens expire: one heap and one timer for the worker, not a timer a socket.

A timer per socket costs an idle socket about 600 bytes (the handle, its arguments and the event
loop's own timer), and most sockets close long before their tokens expire. Here a socket costs a
heap entry while it is open; the one timer is set for the earliest expiry.
"""

from __future__ import annotations

import asyncio
import heapq
import time

from chatserver.connection import Connection
from chatserver.protocol.vocabulary import CloseCode

COMPACT_BELOW = 0.5
"""Rebuild the heap when fewer than this share of its entries belong to open sockets."""


class TokenExpiries:
    """Sockets by the time their tokens expire; ``finish(TOKEN_EXPIRED)`` on each when its time comes."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []  # (expires_at, connection id); closed ones are skipped
        self._open: dict[int, Connection] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    def __len__(self) -> int:
        return len(self._open)

    def add(self, connection: Connection, expires_at: float) -> None:
        self._open[connection.id] = connection
        heapq.heappush(self._heap, (expires_at, connection.id))
        if expires_at < self._timer_at:
            self._arm(expires_at)

    def discard(self, connection: Connection) -> None:
        """The socket closed: forget it (its heap entry goes at its time, or when the heap is rebuilt)."""
        if self._open.pop(connection.id, None) is not None and len(self._open) < len(self._heap) * COMPACT_BELOW:
            self._heap = [entry for entry in self._heap if entry[1] in self._open]
            heapq.heapify(self._heap)

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().call_later(max(at - time.time(), 0.0), self._expire)

    def _expire(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        now = time.time()
        while self._heap and self._heap[0][0] <= now:
            _, connection_id = heapq.heappop(self._heap)
            connection = self._open.pop(connection_id, None)
            if connection is not None:
                connection.finish(CloseCode.TOKEN_EXPIRED)
        if self._heap:
            self._arm(self._heap[0][0])
