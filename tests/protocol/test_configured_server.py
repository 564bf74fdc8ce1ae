"""Operator settings a client can see: a feelings allow-list, a custom content limit (dialects: test_game_dialect)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import ServerFactory
from tests.support.harness import Client, ServerProcess, token

GAME_FEELINGS = "Happy,Sad,Neutral,Love,Thinking,Wink,Angry,None"


@pytest.fixture(scope="module")
def strict_server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(CHAT_FEELINGS=GAME_FEELINGS, CHAT_CONTENT_MAX_CHARS="10")


@pytest.mark.parametrize(("sent", "stored"), [("happy", "Happy"), ("WINK", "Wink"), ("None", "None")])
async def test_allowed_feelings_match_case_insensitively_and_store_the_list_spelling(
    strict_server: ServerProcess, new_id: Callable[[], str], sent: str, stored: str
) -> None:
    client = await Client.connect(strict_server, token(new_id()))
    assert (await client.post("global", "feel", feeling=sent))["feeling"] == stored


async def test_feeling_outside_the_list_is_wrong_enum(strict_server: ServerProcess, new_id: Callable[[], str]) -> None:
    client = await Client.connect(strict_server, token(new_id()))
    await client.send({"event": "globalMessage", "data": {"content": "feel", "feeling": "excited"}})
    assert await client.recv() == {
        "error": [
            {
                "reason": "WRONG_ENUM",
                "field": "feeling",
                "value": "excited",
                "message": f"feeling must be one of {GAME_FEELINGS.replace(',', ', ')}",
                "additional": {"allowed": GAME_FEELINGS.split(",")},
            }
        ]
    }


async def test_configured_content_limit_applies(strict_server: ServerProcess, new_id: Callable[[], str]) -> None:
    client = await Client.connect(strict_server, token(new_id()))
    assert (await client.post("global", "0123456789"))["content"] == "0123456789"
    await client.send({"event": "globalMessage", "data": {"content": "0123456789!"}})
    assert (await client.recv())["error"][0] == {
        "reason": "MORE_THAN_MAX",
        "field": "content",
        "value": None,
        "message": "content must be shorter than or equal to 10 characters",
        "additional": {"max": 10},
    }
