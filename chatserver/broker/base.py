"""The broker interface: per-room channels carrying encoded frames, and one membership channel.

A worker subscribes to a room while it holds a local socket in it. Publishing hands the already
encoded frame text to every subscribed worker, which pushes it unchanged to its local sockets.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from enum import StrEnum


class BrokerUnavailable(Exception):
    """The broker could not take a publish; the frame reached no other worker."""


class MembershipAction(StrEnum):
    LEAVE = "leave"
    JOIN = "join"


@dataclass(frozen=True)
class MembershipChange:
    """``{"player_id", "action", "clan_id"}`` on the membership channel (PROTOCOL.md §7)."""

    player_id: str
    action: MembershipAction
    clan_id: str

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "action": self.action.value})

    @classmethod
    def from_json(cls, text: str | bytes) -> MembershipChange:
        """Parse a membership message; raises ``ValueError`` on anything malformed."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("membership message must be an object")
        player_id, clan_id = data.get("player_id"), data.get("clan_id")
        if not isinstance(player_id, str) or not player_id or not isinstance(clan_id, str) or not clan_id:
            raise ValueError("membership message needs non-empty player_id and clan_id strings")
        return cls(player_id, MembershipAction(data.get("action")), clan_id)


RoomFrameHandler = Callable[[str, str], None]
"""Called with (room name, frame text) for every frame published to a room this worker subscribes to."""

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
    async def publish(self, room: str, frame: str) -> None:
        """Send ``frame`` to every worker subscribed to ``room``; raises ``BrokerUnavailable``."""

    @abstractmethod
    async def publish_membership(self, change: MembershipChange) -> None:
        """Tell every worker that a player left or joined a clan; raises ``BrokerUnavailable``."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when publishes would go through right now (for ``/readyz``)."""
