"""Who a player is in chat: name, avatar and current clan, from the game database or from token claims.

With the game database configured, the ``Player`` collection is the truth (a player missing there is
refused). Without it (the embedded default and standalone deployments) the token's claims are.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chatserver.auth import Identity, authenticate
from chatserver.clan_ledger import ClanLedger
from chatserver.protocol import ErrorReason
from chatserver.protocol.errors import ChatError, not_available
from chatserver.settings import Settings
from chatserver.store.base import StoreUnavailable


@dataclass(frozen=True, slots=True)
class Player:
    """A connected player's profile as the chat needs it; ``clan_id`` is ``None`` for the clanless."""

    id: str
    name: str
    avatar: dict[str, Any] | None
    clan_id: str | None


class PlayerNotFound(Exception):
    """The token is valid but its player does not exist."""


class PlayerDirectory(ABC):
    """Resolves identities to players and looks up senders' current profiles for history."""

    @abstractmethod
    async def resolve(self, identity: Identity) -> Player:
        """The player behind a verified token; raises ``PlayerNotFound``."""

    @abstractmethod
    async def profiles(self, player_ids: Iterable[str]) -> dict[str, Player]:
        """Current profiles of those players that the directory knows; others are left out."""


class ClaimsDirectory(PlayerDirectory):
    """Profiles from token claims (``name``, ``clan_id``, ``avatar``); the name defaults to the player id.

    A ``clan_id`` claim that a later membership change voided (``clan_ledger.py``) counts as no clan.
    """

    def __init__(self, ledger: ClanLedger) -> None:
        self._ledger = ledger

    async def resolve(self, identity: Identity) -> Player:
        clan_id = identity.clan_id
        if clan_id is not None and await self._ledger.voids(identity.player_id, clan_id, identity.issued_at):
            clan_id = None
        return Player(
            id=identity.player_id,
            name=identity.name or identity.player_id,
            avatar=identity.avatar,
            clan_id=clan_id,
        )

    async def profiles(self, player_ids: Iterable[str]) -> dict[str, Player]:
        """Claims are only known at connect time, so history keeps the profile stored with each message."""
        return {}


async def identify(token: str | None, settings: Settings, directory: PlayerDirectory) -> tuple[Identity, Player]:
    """Token to player for both endpoints: 401 for the token, 404 for an unknown player, 503 if the
    game database does not answer."""
    identity = authenticate(token, settings)
    try:
        return identity, await directory.resolve(identity)
    except PlayerNotFound:
        raise ChatError.of(ErrorReason.NOT_FOUND, "player_id", "Player not found", identity.player_id) from None
    except StoreUnavailable:
        raise not_available("The player directory") from None
