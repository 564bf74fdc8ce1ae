"""A game deployment on the game's database: tokens shaped exactly like the game's, and history that the
old backend or a wiki client wrote, all read by the shipped client's model without a throw.

The server runs on the MongoDB wire stand-in, seeded through PyMongo as the game backend would write.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from bson import ObjectId
from pymongo import MongoClient

from tests.conftest import ServerFactory
from tests.support.game_client import GameClient, check_history
from tests.support.harness import TEST_SECRET, ServerProcess

PLAYER, OTHER = ObjectId("64b00000000000000000000a"), ObjectId("64b00000000000000000000b")
CLAN = ObjectId("64c00000000000000000000a")
AVATAR = {"head": {"id": 4, "color": "#123456"}, "eyes": 3, "skinColor": "#abcdef"}


def game_token(player_id: ObjectId) -> str:
    """Exactly the claims the game backend signs: ``player_id``, ``profile_id``, ``iat``, ``exp``."""
    now = int(time.time())
    claims = {"player_id": str(player_id), "profile_id": str(ObjectId()), "iat": now, "exp": now + 3600}
    return jwt.encode(claims, TEST_SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def database(mongo_standin_url: str) -> Iterator[tuple[str, str]]:
    name = f"game_{secrets.token_hex(4)}"
    client: MongoClient[dict[str, object]] = MongoClient(mongo_standin_url)
    db = client[name]
    db["Player"].insert_many(
        [
            {"_id": PLAYER, "name": "Zed", "clan_id": CLAN, "avatar": AVATAR, "__v": 0},
            {"_id": OTHER, "name": "Old Timer", "clan_id": CLAN, "avatar": None},
        ]
    )
    written = datetime.now(UTC) - timedelta(minutes=5)
    db["ChatMessage"].insert_many(
        [
            {  # the old backend stores whatever strings it got
                "type": "clan",
                "sender_id": OTHER,
                "content": "from the old backend",
                "feeling": "excited",
                "clan_id": str(CLAN),
                "reactions": [
                    {"playerName": "Zed", "emoji": "🔥", "sender_id": str(PLAYER), "_id": ObjectId()},
                    {"playerName": "Old Timer", "emoji": "Love", "sender_id": str(OTHER), "_id": ObjectId()},
                    {"playerName": "System", "emoji": "", "sender_id": "legacy_system"},
                ],
                "createdAt": written,
                "updatedAt": written,
                "__v": 0,
            },
            {
                "type": "clan",
                "sender_id": OTHER,
                "content": "lower-case mood",
                "feeling": "sad",
                "clan_id": str(CLAN),
                "reactions": [],
                "createdAt": written + timedelta(seconds=1),
                "updatedAt": written + timedelta(seconds=1),
            },
        ]
    )
    try:
        yield mongo_standin_url, name
    finally:
        client.drop_database(name)
        client.close()


@pytest.fixture(scope="module")
def game_server(server_factory: ServerFactory, database: tuple[str, str]) -> ServerProcess:
    url, name = database
    return server_factory(MONGODB_URL=url, MONGODB_DB=name, CHAT_DIALECT="game")


def clan_history(server: ServerProcess, bearer: str) -> dict[str, object]:
    response = httpx.get(
        f"{server.http_url}/chat/history", params={"type": "clan"}, headers={"authorization": f"Bearer {bearer}"}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_game_token_gets_name_avatar_and_clan_from_player_shaped_for_the_client(
    game_server: ServerProcess,
) -> None:
    game = await GameClient.open(game_server.ws_url, game_token(PLAYER))
    message = await game.post("clan", "hello clan", feeling="Love")
    assert message["clan_id"] == str(CLAN)
    avatar = {"head": {"id": 4, "color": "#123456"}, "eyes": {"id": 3, "color": "#ffffff"}}  # as the game reads 3
    assert message["sender"] == {"_id": str(PLAYER), "name": "Zed", "avatar": avatar}


async def test_history_written_by_the_old_backend_parses_in_the_game_client(game_server: ServerProcess) -> None:
    messages = check_history(clan_history(game_server, game_token(OTHER)))
    old = next(m for m in messages if m["content"] == "from the old backend")
    assert "feeling" not in old
    assert old["reactions"] == [{"playerName": "Old Timer", "emoji": "Love", "sender_id": str(OTHER)}]
    assert next(m for m in messages if m["content"] == "lower-case mood")["feeling"] == "Sad"
