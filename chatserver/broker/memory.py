"""The embedded broker: one process, so publishing is a direct call into this worker's handler."""

from __future__ import annotations

import dataclasses

from chatserver.broker.base import Broker, BrokerEventHandler, RoomFrame
from chatserver.protocol import MembershipChange


class MemoryBroker(Broker):
    """Delivers synchronously to the only worker there is; subscriptions only filter rooms."""

    def __init__(self) -> None:
        self._handler: BrokerEventHandler | None = None
        self._rooms: set[str] = set()
        self._last_seq: dict[str, int] = {}

    async def start(self, handler: BrokerEventHandler) -> None:
        self._handler = handler

    async def stop(self) -> None:
        self._handler = None
        self._rooms.clear()

    async def subscribe(self, room: str) -> None:
        self._rooms.add(room)

    async def unsubscribe(self, room: str) -> None:
        self._rooms.discard(room)

    async def publish(self, room: str, frame: RoomFrame) -> None:
        seq = self._last_seq[room] = self._last_seq.get(room, 0) + 1
        if self._handler is not None and room in self._rooms:
            self._handler.handle_room_frame(room, dataclasses.replace(frame, seq=seq))

    async def publish_membership(self, change: MembershipChange) -> None:
        if self._handler is not None:
            await self._handler.handle_membership(change)

    async def ping(self) -> bool:
        return True
