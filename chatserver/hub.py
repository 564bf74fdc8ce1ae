"""This worker's sockets and rooms: who is in which room here, and fan-out of one frame per dialect.

A room's members are kept by dialect, so a broadcast is rendered once for each dialect present and
serialised once for all its sockets. The hub subscribes to a room's channel on its first local
member, unsubscribes after the last, and moves a player's sockets when the player changes clan.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from chatserver import metrics
from chatserver.broker.base import RoomFrame, RoomSubscriptions
from chatserver.connection import Connection, ConnectionState
from chatserver.protocol.outbound import RENDERERS
from chatserver.protocol.vocabulary import CloseCode, Dialect, RoomKey
from chatserver.transport import text_frame

log = logging.getLogger(__name__)

Members = dict[Dialect, set[Connection]]


class Hub:
    """Rooms of local connections, keyed by room name (``global``, ``clan:<id>``)."""

    def __init__(self, subscriptions: RoomSubscriptions, max_sockets_per_player: int) -> None:
        self._subscriptions = subscriptions
        self._max_sockets_per_player = max_sockets_per_player
        self._rooms: dict[str, Members] = {}
        self._by_player: dict[str, list[Connection]] = {}  # lists: most players have one socket here
        self._count = 0

    @property
    def connection_count(self) -> int:
        return self._count

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    async def attach(self, connection: Connection) -> None:
        """Join a new socket to the global room and, if its player has one, to the clan's room.

        A player over ``max_sockets_per_player`` on this worker loses the oldest socket (1008): the
        device just opened is the one in the player's hand.
        """
        mine = self._by_player.setdefault(connection.player.id, [])
        mine.append(connection)
        self._count += 1
        metrics.OPEN_SOCKETS.inc()
        open_ones = sorted((c for c in mine if c.state is ConnectionState.OPEN), key=lambda c: c.id)
        for oldest in open_ones[: max(len(open_ones) - self._max_sockets_per_player, 0)]:
            # cut, not finish: the old device may be the one that stopped reading
            oldest.cut(CloseCode.TOO_MANY_SOCKETS)
        await self._join(connection, RoomKey.global_room().name)
        if connection.player.clan_id is not None:
            await self._join(connection, RoomKey.clan(connection.player.clan_id).name)

    async def detach(self, connection: Connection) -> None:
        """Remove a closed socket from every room it was in."""
        for room in list(connection.rooms):
            await self._leave(connection, room)
        self._count -= 1
        metrics.OPEN_SOCKETS.dec()
        mine = self._by_player.get(connection.player.id)
        if mine is not None:
            if connection in mine:
                mine.remove(connection)
            if not mine:
                del self._by_player[connection.player.id]

    def count_of(self, dialect: Dialect) -> int:
        return sum(1 for connection in self._connections() if connection.dialect is dialect)

    def finish_all(self, close: CloseCode, dialect: Dialect | None = None) -> None:
        """Close every local socket (of ``dialect`` only, if given) once its queued frames are sent."""
        for connection in self._connections():
            if dialect is None or connection.dialect is dialect:
                connection.finish(close)

    def cut_all(self, close: CloseCode) -> None:
        for connection in self._connections():
            connection.cut(close)

    def _connections(self) -> list[Connection]:
        return [connection for mine in self._by_player.values() for connection in mine]

    def deliver(self, room: str, frame: RoomFrame) -> None:
        """Fan one frame out to every local socket of ``room`` (the receive side calls this): one text per dialect."""
        members_by_dialect = self._rooms.get(room)
        if members_by_dialect is None:
            return
        audience = 0
        for dialect, members in members_by_dialect.items():
            text = frame.text if dialect is Dialect.WIKI else RENDERERS[dialect].broadcast(frame.text)
            if text is None:
                metrics.FRAMES_WITHHELD.labels("broadcast").inc(len(members))
                continue
            wire = text_frame(text)  # serialised once: server frames are unmasked, the same bytes for every socket
            for connection in members:
                connection.push(text, wire)
            audience += len(members)
        metrics.BROADCASTS_OUT.inc(audience)
        metrics.BROADCAST_SECONDS.observe(max(time.time() - frame.sent_at, 0.0))

    async def move_player(self, player_id: str, clan_id: str | None, *, only_from: str | None = None) -> None:
        """Put every local socket of the player in ``clan_id``'s room (none for ``None``) and tell it so.

        With ``only_from``, only sockets now in that clan move: a "left clan X" message must not
        pull a socket out of the clan Y it has since joined.
        """
        for connection in list(self._by_player.get(player_id, ())):
            current = connection.player.clan_id
            if current != clan_id and (only_from is None or current == only_from):
                await self._move(connection, clan_id)

    async def _move(self, connection: Connection, new_clan: str | None) -> None:
        old_clan = connection.player.clan_id
        if old_clan is not None:
            await self._leave(connection, RoomKey.clan(old_clan).name)
            connection.tell("membership", connection.frames.membership(False, old_clan))
        connection.player = dataclasses.replace(connection.player, clan_id=new_clan)
        if new_clan is not None:
            await self._join(connection, RoomKey.clan(new_clan).name)
            connection.tell("membership", connection.frames.membership(True, new_clan))

    async def _join(self, connection: Connection, room: str) -> None:
        members = self._rooms.get(room)
        if members is None:
            members = self._rooms[room] = {}
            metrics.ROOMS.inc()
            await self._subscriptions.subscribe(room)
        members.setdefault(connection.dialect, set()).add(connection)
        if room not in connection.rooms:
            connection.rooms.append(room)

    async def _leave(self, connection: Connection, room: str) -> None:
        if room in connection.rooms:
            connection.rooms.remove(room)
        members = self._rooms.get(room)
        if members is None:
            return
        of_dialect = members.get(connection.dialect)
        if of_dialect is not None:
            of_dialect.discard(connection)
            if not of_dialect:
                del members[connection.dialect]
        if not members:
            del self._rooms[room]
            metrics.ROOMS.dec()
            await self._subscriptions.unsubscribe(room)
