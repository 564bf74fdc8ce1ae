"""Redis channel and key names of the rooms, for one Redis or a Redis Cluster."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RedisNames:
    """Channel and key names of the rooms: hash-tagged on a cluster, the names of old on one Redis."""

    prefix: str
    sharded: bool

    @property
    def membership(self) -> str:
        return f"{self.prefix}membership"

    def room_channel(self, room: str) -> str:
        return f"{self.prefix}room:{self._tagged(room)}"

    def seq_key(self, room: str) -> str:
        return f"{self.prefix}seq:{self._tagged(room)}"

    def room_of(self, channel: str) -> str | None:
        """The room a channel carries, or None for a channel that is not a room's."""
        start = f"{self.prefix}room:"
        if not channel.startswith(start):
            return None
        room = channel[len(start) :]
        if self.sharded:
            return room[1:-1] if room.startswith("{") and room.endswith("}") else None
        return room

    def _tagged(self, room: str) -> str:
        return f"{{{room}}}" if self.sharded else room
