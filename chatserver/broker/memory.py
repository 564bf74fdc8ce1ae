"""The embedded broker: one process, so publishing is a direct call into this worker's hub."""

from __future__ import annotations

import dataclasses

from chatserver.broker.base import Broker, MembershipHandler, ResubscribedHandler, RoomFrame, RoomFrameHandler
from chatserver.protocol import MembershipChange


class MemoryBroker(Broker):
    """Delivers synchronously to the only worker there is; subscriptions only filter rooms."""

    def __init__(self) -> None:
        self._on_room_frame: RoomFrameHandler | None = None
        self._on_membership: MembershipHandler | None = None
        self._rooms: set[str] = set()
        self._last_seq: dict[str, int] = {}

    async def start(
        self,
        on_room_frame: RoomFrameHandler,
        on_membership: MembershipHandler,
        on_resubscribed: ResubscribedHandler | None = None,
    ) -> None:
        self._on_room_frame = on_room_frame
        self._on_membership = on_membership

    async def stop(self) -> None:
        self._on_room_frame = None
        self._on_membership = None
        self._rooms.clear()

    async def subscribe(self, room: str) -> None:
        self._rooms.add(room)

    async def unsubscribe(self, room: str) -> None:
        self._rooms.discard(room)

    async def publish(self, room: str, frame: RoomFrame) -> None:
        seq = self._last_seq[room] = self._last_seq.get(room, 0) + 1
        if self._on_room_frame is not None and room in self._rooms:
            self._on_room_frame(room, dataclasses.replace(frame, seq=seq))

    async def publish_membership(self, change: MembershipChange) -> None:
        if self._on_membership is not None:
            await self._on_membership(change)

    async def ping(self) -> bool:
        return True
