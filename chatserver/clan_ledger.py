"""What membership changes say about clan claims in tokens signed before them (claims mode only).

Without the game database a token's ``clan_id`` claim is the player's clan, and a token outlives a
``leave``: the old token would still read the clan's history and rejoin its room. Every worker
applying a change also writes it here; a claim is then void when the token was issued (``iat``) no
later than a change that took the player out of that clan: a leave of it, or a join of another. A
token without ``iat`` is older than every change. Changes are kept ``CHAT_CLAN_LEDGER_SECONDS``
(default 30 days, the game's token lifetime) after the player's last one; in Redis with
``REDIS_URL`` so every replica, including one started later, honours them.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar, cast

from chatserver.redis_client import REDIS_FAILURES, CommandClient, connect_commands

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class PlayerChanges:
    """One player's remembered changes: when each clan was left, and the last clan joined."""

    left: dict[str, float] = field(default_factory=dict)
    joined: tuple[str, float] | None = None
    touched: float = 0.0

    def leave(self, clan_id: str, at: float) -> None:
        self.left[clan_id] = at
        self.touched = at

    def join(self, clan_id: str, at: float) -> None:
        self.joined = (clan_id, at)
        self.touched = at

    def voids(self, clan_id: str, issued_at: float | None) -> bool:
        """Whether a token issued at ``issued_at`` may no longer claim ``clan_id``: a later change took the
        player out of it (a leave of it, a join of another), and no join of it came after that."""
        out_at = self.left.get(clan_id)
        if self.joined is not None:
            joined_clan, joined_at = self.joined
            if joined_clan == clan_id and (out_at is None or joined_at > out_at):
                return False
            if joined_clan != clan_id:
                out_at = joined_at if out_at is None else max(out_at, joined_at)
        return out_at is not None and (issued_at is None or issued_at <= out_at)


class ClanLedger(ABC):
    """Membership changes remembered for claims mode; every method is safe to call on every worker."""

    def __init__(self, keep_seconds: float) -> None:
        self._keep_seconds = keep_seconds

    @abstractmethod
    async def record_leave(self, player_id: str, clan_id: str) -> None: ...

    @abstractmethod
    async def record_join(self, player_id: str, clan_id: str) -> None: ...

    @abstractmethod
    async def changes_of(self, player_id: str) -> PlayerChanges | None:
        """The player's remembered changes, None when there are none."""

    async def voids(self, player_id: str, clan_id: str, issued_at: float | None) -> bool:
        changes = await self.changes_of(player_id)
        return changes is not None and changes.voids(clan_id, issued_at)

    async def close(self) -> None:
        """Release connections."""


class MemoryClanLedger(ClanLedger):
    """Changes in this process (one process serves everything); the least recently changed beyond ``max_players`` go."""

    def __init__(self, keep_seconds: float, max_players: int = 100_000) -> None:
        super().__init__(keep_seconds)
        self._players: OrderedDict[str, PlayerChanges] = OrderedDict()
        self._max_players = max_players

    async def record_leave(self, player_id: str, clan_id: str) -> None:
        self._changing(player_id).leave(clan_id, time.time())

    async def record_join(self, player_id: str, clan_id: str) -> None:
        self._changing(player_id).join(clan_id, time.time())

    async def changes_of(self, player_id: str) -> PlayerChanges | None:
        changes = self._players.get(player_id)
        if changes is not None and changes.touched + self._keep_seconds < time.time():
            del self._players[player_id]
            return None
        return changes

    def _changing(self, player_id: str) -> PlayerChanges:
        changes = self._players.pop(player_id, None) or PlayerChanges()
        self._players[player_id] = changes
        if len(self._players) > self._max_players:
            self._players.popitem(last=False)
        return changes


class RedisClanLedger(ClanLedger):
    """One hash per player, ``<prefix>clans:<player_id>``: ``left:<clan>`` and ``joined`` fields, expiring as a whole.

    If Redis cannot answer, a claim is trusted as written (logged): the ledger must not become an
    outage of its own, and live delivery is down with Redis anyway.
    """

    def __init__(self, url: str, prefix: str, keep_seconds: float) -> None:
        super().__init__(keep_seconds)
        self._url = url
        self._client: CommandClient | None = None
        self._prefix = f"{prefix}clans:"

    async def record_leave(self, player_id: str, clan_id: str) -> None:
        await self._record(player_id, f"left:{clan_id}", repr(time.time()))

    async def record_join(self, player_id: str, clan_id: str) -> None:
        await self._record(player_id, "joined", f"{time.time()!r} {clan_id}")

    async def _record(self, player_id: str, name: str, value: str) -> None:
        key = self._prefix + player_id
        client = await self._guarded(self._connected(), player_id)
        if client is None:
            return
        async with client.pipeline(transaction=True) as pipe:
            pipe.hset(key, name, value)
            pipe.expire(key, int(self._keep_seconds))
            await self._guarded(pipe.execute(), player_id)

    async def changes_of(self, player_id: str) -> PlayerChanges | None:
        client = await self._guarded(self._connected(), player_id)
        if client is None:
            return None
        found = await self._guarded(client.hgetall(self._prefix + player_id), player_id)
        fields = cast(dict[str, str], found or {})  # decode_responses: names and values are str
        if not fields:
            return None
        changes = PlayerChanges()
        for name, value in fields.items():
            if name.startswith("left:"):
                changes.left[name.removeprefix("left:")] = float(value)
            elif name == "joined":
                at, _, clan_id = value.partition(" ")
                changes.joined = (clan_id, float(at))
        return changes

    async def _guarded(self, call: Awaitable[T], player_id: str) -> T | None:
        try:
            return await call
        except REDIS_FAILURES as error:
            log.warning("clan ledger unavailable: %s", error, extra={"player_id": player_id})
            return None

    async def _connected(self) -> CommandClient:
        """A client for what ``REDIS_URL`` is (one Redis or a cluster), made on first use."""
        if self._client is None:
            options = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0, "decode_responses": True}
            self._client = await connect_commands(self._url, **options)
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
