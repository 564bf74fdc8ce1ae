"""Quick responses: a message's ``responseType`` is checked, stored, broadcast and in history; it may replace
``content``; a game deployment allows exactly the shipped client's ``ResponseType`` names.

The event stream's side (``responseType`` on ``message.created``) is in ``test_events.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from chatserver.protocol.vocabulary import RESPONSE_TYPES
from chatserver.settings import Settings
from tests.conftest import ServerFactory
from tests.support.game_client import GameClient
from tests.support.harness import Client, ServerProcess, token

WIKI = "altzone-chat.wiki"


def test_a_game_deployment_allows_the_clients_eighteen_response_types_and_a_wiki_one_any_label() -> None:
    assert Settings.from_env({"CHAT_DIALECT": "game"}).response_types == RESPONSE_TYPES
    assert RESPONSE_TYPES[:3] == ("NeedCompany", "NewGame", "ComingToPlay") and len(RESPONSE_TYPES) == 18
    assert RESPONSE_TYPES[-3:] == ("SkillIssue", "SkillIssue2", "Funny")
    assert Settings.from_env({}).response_types == ()
    assert Settings.from_env({"CHAT_RESPONSE_TYPES": "Yes, No"}).response_types == ("Yes", "No")


async def history(server: ServerProcess, bearer: str, chat: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        page = await http.get(f"/chat/history?type={chat}", headers={"Authorization": f"Bearer {bearer}"})
    messages: list[dict[str, Any]] = page.json()["data"]["ChatMessage"]
    return messages


async def test_a_quick_response_is_broadcast_and_in_history_beside_its_content(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    bearer = token(new_id(), name="Ann", clan_id=clan)
    sender = await Client.connect(server, bearer)
    friend = await Client.connect(server, token(new_id(), name="Ben", clan_id=clan))

    message = await sender.post("clan", "anyone up for a game?", responseType="NeedCompany", feeling="Happy")

    assert (message["content"], message["responseType"], message["feeling"]) == (
        "anyone up for a game?", "NeedCompany", "Happy"
    )  # fmt: skip
    assert (await friend.recv())["message"] == message
    assert (await history(server, bearer, "clan"))[0] == message


async def test_a_quick_response_without_content_has_its_name_as_content(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    bearer = token(new_id(), name="Ann")
    sender = await Client.connect(server, bearer)

    await sender.send({"event": "globalMessage", "data": {"responseType": "GoodGame"}})
    message = (await sender.recv())["message"]

    assert (message["content"], message["responseType"]) == ("GoodGame", "GoodGame")
    assert (await history(server, bearer, "global"))[0] == message


async def test_a_message_without_a_quick_response_has_no_response_type_field(
    embedded_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    message = await (await Client.connect(embedded_server, token(new_id()))).post("global", "plain words")
    assert "responseType" not in message


def error(reason: str, message: str, value: Any = None, additional: Any = None) -> dict[str, Any]:
    return {"error": [{"reason": reason, "field": "responseType", "value": value, "message": message,
                       "additional": additional}]}  # fmt: skip


@pytest.mark.parametrize(
    ("response_type", "expected"),
    [
        (7, error("NOT_STRING", "responseType must be a string", 7)),
        (" ", error("REQUIRED", "responseType must not be empty", " ")),
        ("x" * 65, error("MORE_THAN_MAX", "responseType must be shorter than or equal to 64 characters",
                         None, {"max": 64})),
    ],
    ids=["number", "blank", "too-long"],
)  # fmt: skip
async def test_without_an_allow_list_a_quick_response_is_any_short_label(
    embedded_server: ServerProcess, new_id: Callable[[], str], response_type: Any, expected: dict[str, Any]
) -> None:
    client = await Client.connect(embedded_server, token(new_id()))
    await client.send({"event": "globalMessage", "data": {"content": "hi", "responseType": response_type}})
    assert await client.recv() == expected


async def test_with_an_allow_list_a_quick_response_is_one_of_it_in_its_spelling(
    server_factory: ServerFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory(CHAT_RESPONSE_TYPES="NeedCompany,Yes")
    client = await Client.connect(server, token(new_id()))

    assert (await client.post("global", "coming", responseType="needcompany"))["responseType"] == "NeedCompany"
    await client.send({"event": "globalMessage", "data": {"responseType": "Maybe"}})
    assert await client.recv() == error(
        "WRONG_ENUM", "responseType must be one of NeedCompany, Yes", "Maybe", {"allowed": ["NeedCompany", "Yes"]}
    )


async def test_a_game_deployment_takes_the_clients_names_and_shows_them_to_game_sockets(
    server_factory: ServerFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory(CHAT_DIALECT="game")
    game = await GameClient.open(server.ws_url, token(new_id(), name="Gamer"))
    wiki = await Client.connect(server, token(new_id(), name="Wiki"), subprotocol=WIKI)

    await wiki.send({"event": "globalMessage", "data": {"responseType": "SkillIssue2"}})
    try:
        seen = await game.recv()
    finally:
        await game.close()
    assert (seen["event"], seen["message"]["content"], seen["message"]["responseType"]) == (
        "newMessage", "SkillIssue2", "SkillIssue2"
    )  # fmt: skip
    assert (await wiki.recv())["message"]["responseType"] == "SkillIssue2"
    await wiki.send({"event": "globalMessage", "data": {"responseType": "NeedPizza"}})
    assert (await wiki.recv())["error"][0]["reason"] == "WRONG_ENUM"
