"""Players from the game's ``Player`` collection: the source of name, avatar and clan when it is configured.

Read-only. Relies on Beanie having been initialised by ``MongoStore.open()`` (which registers
``PlayerDocument``), so the directory and the store share one client. Driver errors surface as
``StoreUnavailable``, like the store's, so the caller answers NOT_AVAILABLE rather than a crash.
"""

from __future__ import annotations

from collections.abc import Iterable

from beanie.operators import In

from chatserver.auth import Identity
from chatserver.players import Player, PlayerDirectory, PlayerNotFound
from chatserver.store.documents import PlayerDocument, as_object_id
from chatserver.store.mongo import driver_errors_as_unavailable


def _player(document: PlayerDocument) -> Player:
    return Player(
        id=str(document.id),
        name=document.name,
        avatar=document.avatar,
        clan_id=None if document.clan_id is None else str(document.clan_id),
    )


class MongoPlayerDirectory(PlayerDirectory):
    """Looks players up by ``_id``; a player id that is not an ObjectId cannot be in the collection."""

    async def resolve(self, identity: Identity) -> Player:
        player_id = as_object_id(identity.player_id)
        if player_id is None:
            raise PlayerNotFound(identity.player_id)
        with driver_errors_as_unavailable():
            document = await PlayerDocument.get(player_id)
        if document is None:
            raise PlayerNotFound(identity.player_id)
        return _player(document)

    async def profiles(self, player_ids: Iterable[str]) -> dict[str, Player]:
        """One ``$in`` query for all of them; unknown and non-ObjectId ids are left out."""
        object_ids = {oid for oid in map(as_object_id, player_ids) if oid is not None}
        if not object_ids:
            return {}
        with driver_errors_as_unavailable():
            documents = await PlayerDocument.find(In(PlayerDocument.id, list(object_ids))).to_list()
        return {str(d.id): _player(d) for d in documents}
