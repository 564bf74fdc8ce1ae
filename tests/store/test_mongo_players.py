"""``MongoPlayerDirectory`` on the stand-in: players seeded raw in the game's ``Player`` layout."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from bson import ObjectId

from chatserver.auth import Identity
from chatserver.players import Player, PlayerNotFound
from chatserver.players.mongo import MongoPlayerDirectory
from chatserver.store.documents import PlayerDocument
from chatserver.store.mongo import MongoStore

ALICE = ObjectId("665af23e5e982f0013aa0001")
BOB = ObjectId("665af23e5e982f0013aa0002")
CAROL = ObjectId("665af23e5e982f0013aa0003")
CLAN = ObjectId("665af23e5e982f0013aa7a01")
AVATAR = {
    "head": {"id": 3, "color": "#112233"},
    "hair": {"id": 4, "color": "#445566"},
    "skinColor": "#aabbcc",
}


@pytest.fixture
async def directory(mongo_standin_url: str) -> AsyncIterator[MongoPlayerDirectory]:
    """A directory over a fresh stand-in database holding Alice (in a clan), Bob (legacy avatar) and Carol."""
    store = MongoStore(mongo_standin_url, f"players_test_{secrets.token_hex(4)}")
    await store.open()
    await PlayerDocument.get_pymongo_collection().insert_many(
        [
            {"_id": ALICE, "name": "Alice", "clan_id": CLAN, "avatar": AVATAR, "points": 10, "__v": 0},
            {"_id": BOB, "name": "Bob", "avatar": {"head": 7, "eyes": 2.0, "hair": {"id": 1, "color": "#000000"},
                                                   "skinColor": "#ffeedd"}},
            {"_id": CAROL, "name": "Carol", "clan_id": None, "avatar": None},
        ]
    )  # fmt: skip
    yield MongoPlayerDirectory()
    await store.close()


async def test_a_known_player_resolves_with_name_avatar_and_clan_as_a_string(directory: MongoPlayerDirectory) -> None:
    player = await directory.resolve(Identity(player_id=str(ALICE), name="token name", clan_id="token clan"))

    assert player == Player(id=str(ALICE), name="Alice", avatar=AVATAR, clan_id=str(CLAN))


async def test_a_player_without_clan_or_avatar_has_none_for_both(directory: MongoPlayerDirectory) -> None:
    player = await directory.resolve(Identity(player_id=str(CAROL)))

    assert (player.clan_id, player.avatar) == (None, None)


async def test_legacy_numeric_avatar_pieces_are_wrapped_as_the_game_does(directory: MongoPlayerDirectory) -> None:
    player = await directory.resolve(Identity(player_id=str(BOB)))

    assert player.clan_id is None
    assert player.avatar == {
        "head": {"id": 7, "color": "#ffffff"},
        "eyes": {"id": 2, "color": "#ffffff"},
        "hair": {"id": 1, "color": "#000000"},
        "skinColor": "#ffeedd",
    }


async def test_a_missing_player_is_not_found(directory: MongoPlayerDirectory) -> None:
    with pytest.raises(PlayerNotFound):
        await directory.resolve(Identity(player_id=str(ObjectId())))


@pytest.mark.parametrize("player_id", ["guest-42", "665AF23E5E982F0013AA0001", ""])
async def test_a_player_id_that_is_not_an_object_id_is_not_found(
    directory: MongoPlayerDirectory, player_id: str
) -> None:
    with pytest.raises(PlayerNotFound):
        await directory.resolve(Identity(player_id=player_id))


async def test_profiles_returns_the_known_players_in_one_query(
    directory: MongoPlayerDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    collection = PlayerDocument.get_pymongo_collection()
    queries: list[object] = []
    find = collection.find

    def counting_find(*args: object, **kwargs: object) -> object:
        queries.append(args[0] if args else kwargs.get("filter"))
        return find(*args, **kwargs)

    monkeypatch.setattr(collection, "find", counting_find)

    stranger = ObjectId()
    profiles = await directory.profiles([str(ALICE), str(BOB), str(stranger), "guest-42", str(ALICE)])

    assert sorted(profiles) == sorted([str(ALICE), str(BOB)])
    assert profiles[str(ALICE)].name == "Alice" and profiles[str(ALICE)].clan_id == str(CLAN)
    bob_avatar = profiles[str(BOB)].avatar
    assert bob_avatar is not None and bob_avatar["head"] == {"id": 7, "color": "#ffffff"}
    [query] = queries
    assert isinstance(query, dict) and sorted(query["_id"]["$in"]) == sorted([ALICE, BOB, stranger])


async def test_profiles_of_nobody_asks_nothing(directory: MongoPlayerDirectory) -> None:
    assert await directory.profiles([]) == {}
    assert await directory.profiles(["guest-1"]) == {}
