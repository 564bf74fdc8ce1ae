"""Resume reads of one room share store round trips: a reconnect storm asks for the same room thousands of times.

While a room's read is in flight, every further read of that room waits and joins the *next* read, which
starts once the current one ends, after every caller in it asked: so it sees all that each caller's own
read would have seen (a socket joins its rooms before it reads, and a later read only sees more). The
next read goes back to the earliest ``since`` among its callers; each caller keeps the changes after its
own ``since``, and reads alone when the shared answer hit its limit before reaching that ``since``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from chatserver.protocol.vocabulary import RoomKey
from chatserver.store.base import ChangeSlice

ChangeRead = Callable[[RoomKey, datetime, int], Awaitable[ChangeSlice]]


@dataclass
class _Read:
    """One store read of a room, for every caller that joined it before it started."""

    since: datetime
    limit: int
    answer: asyncio.Future[ChangeSlice] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def share(found: ChangeSlice, since: datetime, limit: int) -> ChangeSlice | None:
    """A caller's answer cut from a read that went back further; ``None`` when it cannot be told from it.

    ``found`` holds the newest changes after an earlier moment, oldest first; when it is not complete, the
    changes it left out are older than its oldest one, so they matter only if that one is after ``since``.
    """
    if not found.complete and (not found.messages or found.messages[0].updated_at > since):
        return None
    mine = [message for message in found.messages if message.updated_at > since]
    kept = mine[-limit:]
    return ChangeSlice(kept, complete=len(kept) == len(mine))


class SharedChangeReads:
    """``changes_since`` of a store, with concurrent reads of a room merged as described above."""

    def __init__(self, read: ChangeRead) -> None:
        self._read = read
        self._running: set[RoomKey] = set()
        self._next: dict[RoomKey, _Read] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references to tasks

    async def changes_since(self, room: RoomKey, since: datetime, limit: int) -> ChangeSlice:
        if limit <= 0:
            return ChangeSlice([], complete=True)
        pending = self._next.get(room)
        if pending is None:
            pending = self._next[room] = _Read(since, limit)
        else:
            pending.since, pending.limit = min(pending.since, since), max(pending.limit, limit)
        if room not in self._running:
            self._start(room)
        found = await asyncio.shield(pending.answer)
        mine = share(found, since, limit)
        return mine if mine is not None else await self._read(room, since, limit)

    def _start(self, room: RoomKey) -> None:
        pending = self._next.pop(room)
        self._running.add(room)
        task = asyncio.get_running_loop().create_task(self._run(room, pending), name=f"changes-{room.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, room: RoomKey, pending: _Read) -> None:
        try:
            pending.answer.set_result(await self._read(room, pending.since, pending.limit))
        except asyncio.CancelledError:
            pending.answer.cancel()
            raise
        except Exception as error:  # every caller of this read gets what it would have got alone
            pending.answer.set_exception(error)
            pending.answer.add_done_callback(lambda answer: answer.exception())  # retrieved if all callers left
        finally:
            self._running.discard(room)
            if room in self._next:
                self._start(room)
