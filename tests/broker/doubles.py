"""Test-side stand-ins at the broker interface: a handler that records, and a broker that loses frames."""

from __future__ import annotations

import asyncio

from chatserver.broker.base import BrokerEventHandler, RoomFrame
from chatserver.broker.memory import MemoryBroker
from chatserver.protocol import MembershipChange

RECEIVE_TIMEOUT = 5.0


class Recorder(BrokerEventHandler):
    """A worker as the broker sees it: everything handed over, in arrival order, for the test to read.

    ``membership_gate`` (set by default) lets a test hold membership changes, as a slow database would.
    """

    def __init__(self) -> None:
        self.frames: asyncio.Queue[tuple[str, RoomFrame]] = asyncio.Queue()
        self.memberships: asyncio.Queue[MembershipChange] = asyncio.Queue()
        self.resubscribed = 0
        self._resubscriptions = asyncio.Condition()
        self.membership_gate = asyncio.Event()
        self.membership_gate.set()

    def handle_room_frame(self, room: str, frame: RoomFrame) -> None:
        self.frames.put_nowait((room, frame))

    async def handle_membership(self, change: MembershipChange) -> None:
        await self.membership_gate.wait()
        self.memberships.put_nowait(change)

    def handle_resubscribed(self) -> None:
        self.resubscribed += 1
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._resubscriptions:
            self._resubscriptions.notify_all()

    async def next_frame(self) -> tuple[str, RoomFrame]:
        return await asyncio.wait_for(self.frames.get(), RECEIVE_TIMEOUT)

    async def next_membership(self) -> MembershipChange:
        return await asyncio.wait_for(self.memberships.get(), RECEIVE_TIMEOUT)

    async def resubscribed_at_least(self, times: int) -> None:
        async def reached() -> None:
            async with self._resubscriptions:
                await self._resubscriptions.wait_for(lambda: self.resubscribed >= times)

        await asyncio.wait_for(reached(), RECEIVE_TIMEOUT * 3)


class SeqSkippingBroker(MemoryBroker):
    """The in-process broker, except that every ``every``-th frame of a room is lost on the way.

    The lost frame still takes its sequence number, as a frame Redis dropped for a slow subscriber does.
    """

    def __init__(self, every: int) -> None:
        super().__init__()
        self._every = every
        self._published: dict[str, int] = {}

    async def publish(self, room: str, frame: RoomFrame) -> None:
        count = self._published[room] = self._published.get(room, 0) + 1
        if count % self._every:
            await super().publish(room, frame)
        else:
            self._last_seq[room] = self._last_seq.get(room, 0) + 1
