"""Frames written to a socket during one event-loop iteration leave at its end, in one write.

Under a flood a worker handles several messages before it next waits, and each is fanned out to the
same sockets; one write per socket per iteration instead of one per frame saves a system call and
its wake-up for every frame but the first (``websockets.broadcast`` writes each frame on its own).
One message at a time costs one deferred call per iteration, not per socket.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Flushable(Protocol):
    def flush(self) -> None:
        """Write what was gathered during this iteration."""


class Flusher:
    """The sockets with frames gathered this iteration; one ``call_soon`` writes them all."""

    __slots__ = ("_due",)

    def __init__(self) -> None:
        self._due: list[Flushable] = []

    def add(self, socket: Flushable) -> None:
        """``socket`` gathered its first frame of this iteration: flush it at the iteration's end."""
        if not self._due:
            asyncio.get_running_loop().call_soon(self._flush_all)
        self._due.append(socket)

    def _flush_all(self) -> None:
        due, self._due = self._due, []
        for socket in due:
            socket.flush()


FLUSHER = Flusher()
"""One per process: a worker runs one event loop, and a loop runs one callback at a time."""
