"""Clan membership changes: published to every worker, applied to the sockets this worker holds.

Three entry points publish the same message on the broker's membership channel (the game backend
directly on Redis, ``POST /internal/membership`` and ``chatserver membership``); every worker then
moves that player's local sockets. With the game database configured, the player's clan is re-read
there first, so the stored truth wins over a stale or out-of-order message.
"""

from __future__ import annotations

import logging

from chatserver.broker.base import Broker, BrokerUnavailable
from chatserver.clan_ledger import ClanLedger
from chatserver.hub import Hub
from chatserver.players import PlayerDirectory
from chatserver.protocol import MembershipAction, MembershipChange
from chatserver.protocol.errors import not_available
from chatserver.store.base import StoreUnavailable

log = logging.getLogger(__name__)


class Membership:
    def __init__(self, broker: Broker, hub: Hub, players: PlayerDirectory, ledger: ClanLedger | None) -> None:
        """``ledger`` remembers changes for claims mode; None with the game database, which is the truth."""
        self._broker = broker
        self._hub = hub
        self._players = players
        self._ledger = ledger

    async def publish(self, change: MembershipChange) -> None:
        """Tell every worker; raises ``ChatError`` (NOT_AVAILABLE) when the broker cannot take it."""
        try:
            await self._broker.publish_membership(change)
        except BrokerUnavailable:
            log.exception("membership change not published", extra={"player_id": change.player_id})
            raise not_available("Membership delivery") from None

    async def apply(self, change: MembershipChange) -> None:
        """Move the player's local sockets: out of the clan on ``leave``, into it on ``join``."""
        clan_id = change.clan_id if change.action is MembershipAction.JOIN else None
        only_from = change.clan_id if change.action is MembershipAction.LEAVE else None
        if self._ledger is not None:
            if change.action is MembershipAction.LEAVE:
                await self._ledger.record_leave(change.player_id, change.clan_id)
            else:
                await self._ledger.record_join(change.player_id, change.clan_id)
        else:
            try:
                stored = (await self._players.profiles([change.player_id])).get(change.player_id)
            except StoreUnavailable:
                log.warning("player directory unavailable; applying the membership message as sent")
                stored = None
            if stored is not None:
                clan_id, only_from = stored.clan_id, None
        await self._hub.move_player(change.player_id, clan_id, only_from=only_from)
