"""With the game database configured, the ``Player`` collection is the truth for name, avatar and clan.

The server runs on the MongoDB stand-in, seeded through PyMongo with the game's player documents as the
game backend writes them.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pymongo
import pytest
from bson import ObjectId

from tests.conftest import ServerFactory
from tests.support.harness import Client, ServerProcess, post_membership, token

SERVICE_TOKEN = "game-players-service-token"
ZED, YAN, XI = "64b000000000000000000001", "64b000000000000000000002", "64b000000000000000000003"
CLAN = "64c000000000000000000001"
ZED_AVATAR = {"head": {"id": 4, "color": "#123456"}, "skinColor": "#abcdef"}


@pytest.fixture(scope="module")
def game_server(server_factory: ServerFactory, mongo_standin_url: str) -> ServerProcess:
    database = f"game_test_{secrets.token_hex(4)}"
    players = [
        {"_id": ObjectId(ZED), "name": "Zed", "clan_id": ObjectId(CLAN), "avatar": ZED_AVATAR},
        {"_id": ObjectId(YAN), "name": "Yan", "clan_id": ObjectId(CLAN), "avatar": None},
        {"_id": ObjectId(XI), "name": "Xi"},
    ]
    game_database: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_standin_url)
    with game_database:
        game_database[database]["Player"].insert_many(players)
    return server_factory(
        MONGODB_URL=mongo_standin_url,
        MONGODB_DB=database,
        CHAT_PLAYERS_FROM_DB="true",
        CHAT_INTERNAL_TOKEN=SERVICE_TOKEN,
    )


def change(server: ServerProcess, player: str, action: str, clan: str) -> None:
    post_membership(server.http_url, SERVICE_TOKEN, player, action, clan)


async def test_name_avatar_and_clan_come_from_the_database_not_the_token(game_server: ServerProcess) -> None:
    zed = await Client.connect(game_server, token(ZED, name="Impostor", clan_id="not-my-clan"))
    message = await zed.post("clan", "from the database")
    assert message["clan_id"] == CLAN
    assert message["sender"] == {"_id": ZED, "name": "Zed", "avatar": ZED_AVATAR}


async def test_history_shows_the_senders_from_the_database(game_server: ServerProcess) -> None:
    yan = await Client.connect(game_server, token(YAN))
    sent = await yan.post("global", "in the record")
    response = httpx.get(
        f"{game_server.http_url}/chat/history",
        params={"type": "global"},
        headers={"Authorization": f"Bearer {token(XI)}"},
        timeout=5,
    )
    assert response.json()["data"]["ChatMessage"][0] == sent
    assert sent["sender"] == {"_id": YAN, "name": "Yan", "avatar": None}


async def test_membership_messages_that_disagree_with_the_database_change_nothing(game_server: ServerProcess) -> None:
    zed = await Client.connect(game_server, token(ZED))
    yan = await Client.connect(game_server, token(YAN))
    change(game_server, ZED, "leave", CLAN)
    change(game_server, ZED, "join", "64c0000000000000000000ff")
    hello = await yan.post("clan", "still together")
    assert (await zed.recv())["message"] == hello, "the stored clan must win over the messages"


async def test_join_for_a_clanless_player_in_the_database_changes_nothing(game_server: ServerProcess) -> None:
    xi = await Client.connect(game_server, token(XI))
    change(game_server, XI, "join", CLAN)
    await xi.send({"event": "clanMessage", "data": {"content": "am I in?"}})
    assert (await xi.recv())["error"][0]["reason"] == "NOT_ALLOWED"
