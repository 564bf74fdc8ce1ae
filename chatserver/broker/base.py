"""The broker interface: per-room channels carrying encoded frames, and one membership channel.

A worker subscribes to a room while it holds a local socket in it. Publishing hands the already
encoded frame text to every subscribed worker, which pushes it unchanged to its local sockets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from chatserver.protocol import MembershipChange


class BrokerUnavailable(Exception):
    """The broker could not take a publish; the frame reached no other worker."""


RoomFrameHandler = Callable[[str, str, float], None]
"""Called with (room name, frame text, epoch seconds when the client's frame arrived) for every frame
published to a room this worker subscribes to."""

MembershipHandler = Callable[[MembershipChange], Awaitable[None]]


class Broker(ABC):
    """Carries frames between workers. ``start`` is given the worker's handlers before any subscribe."""

    @abstractmethod
    async def start(self, on_room_frame: RoomFrameHandler, on_membership: MembershipHandler) -> None:
        """Connect and begin delivering to the handlers."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop delivering and release connections."""

    @abstractmethod
    async def subscribe(self, room: str) -> None:
        """Begin receiving the frames of ``room``."""

    @abstractmethod
    async def unsubscribe(self, room: str) -> None:
        """Stop receiving the frames of ``room``."""

    @abstractmethod
    async def publish(self, room: str, frame: str, sent_at: float) -> None:
        """Send ``frame`` to every worker subscribed to ``room``; raises ``BrokerUnavailable``.

        ``sent_at`` (epoch seconds the client's frame arrived) travels along for the latency metric.
        """

    @abstractmethod
    async def publish_membership(self, change: MembershipChange) -> None:
        """Tell every worker that a player left or joined a clan; raises ``BrokerUnavailable``."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when publishes would go through right now (for ``/readyz``)."""
