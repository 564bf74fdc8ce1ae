"""The broker interface: per-room channels carrying encoded frames, and one membership channel.

A worker subscribes to a room while it holds a local socket in it. Publishing hands the already
encoded frame text to every subscribed worker, which pushes it unchanged to its local sockets. Each
room numbers its frames (``seq``) as they are published, so a worker can tell when it missed one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from chatserver.protocol import MembershipChange


class BrokerUnavailable(Exception):
    """The broker could not take a publish; the frame reached no other worker."""


@dataclass(frozen=True)
class RoomFrame:
    """A broadcast between workers: its text, encoded once, and what a receiving worker needs besides.

    ``message_id``/``updated_at`` name the version of the message it carries (to skip it when a
    catch-up already delivered it), ``sent_at`` is when the client's frame arrived (epoch seconds,
    for the latency metric; for a frame read back from the store, when it was read) and ``seq`` the
    room's number for it, given at publish (0 before, and for frames read back from the store).
    """

    text: str
    message_id: str
    updated_at: str
    sent_at: float
    seq: int = 0


RoomFrameHandler = Callable[[str, RoomFrame], None]
"""Called with (room name, frame) for every frame to deliver to the sockets of a room."""

MembershipHandler = Callable[[MembershipChange], Awaitable[None]]


class BrokerEventHandler(ABC):
    """Everything a broker hands to its worker: one handler, registered once with ``Broker.start``.

    The broker only moves frames; noticing lost ones and repairing them is the handler's job.
    """

    @abstractmethod
    def handle_room_frame(self, room: str, frame: RoomFrame) -> None:
        """A frame published to a room this worker subscribes to, with the room's ``seq`` for it."""

    @abstractmethod
    async def handle_membership(self, change: MembershipChange) -> None:
        """A player left or joined a clan; called in the order the changes were published."""

    @abstractmethod
    def handle_resubscribed(self) -> None:
        """The subscription was (re)established: frames published while it was broken never arrive."""


class RoomSubscriptions(Protocol):
    """Following rooms: what the hub needs, from the broker or from whatever stands in front of it."""

    async def subscribe(self, room: str) -> None:
        """Begin receiving the frames of ``room``; returns once a frame published after it would arrive."""

    async def unsubscribe(self, room: str) -> None:
        """Stop receiving the frames of ``room``."""


class Broker(ABC):
    """Carries frames between workers; ``start`` registers the worker's one handler before any subscribe."""

    @abstractmethod
    async def start(self, handler: BrokerEventHandler) -> None:
        """Connect and begin delivering to ``handler``."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop delivering and release connections."""

    @abstractmethod
    async def subscribe(self, room: str) -> None:
        """Begin receiving the frames of ``room``; returns once a frame published after it would arrive."""

    @abstractmethod
    async def unsubscribe(self, room: str) -> None:
        """Stop receiving the frames of ``room``."""

    @abstractmethod
    async def publish(self, room: str, frame: RoomFrame) -> None:
        """Number ``frame`` in its room and send it to every worker subscribed; raises ``BrokerUnavailable``."""

    @abstractmethod
    async def publish_membership(self, change: MembershipChange) -> None:
        """Tell every worker that a player left or joined a clan; raises ``BrokerUnavailable``."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when publishes would go through right now (for ``/readyz``)."""
