"""Reacting to messages: set, replace, keep, remove, and never on a message outside the player's rooms."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.harness import Client, ServerProcess, token

NOT_FOUND_TEXT = "Could not find any objects with specified id"


def not_found(message_id: str) -> dict[str, Any]:
    return {
        "error": [
            {"reason": "NOT_FOUND", "field": "_id", "value": message_id, "message": NOT_FOUND_TEXT, "additional": None}
        ]
    }


async def test_reaction_broadcasts_the_whole_updated_message(server: ServerProcess, new_id: Callable[[], str]) -> None:
    clan, author_id, fan_id = new_id(), new_id(), new_id()
    author = await Client.connect(server, token(author_id, name="Author", clan_id=clan))
    fan = await Client.connect(server, token(fan_id, name="Fan", clan_id=clan))
    message = await author.post("clan", "react to me")
    await fan.recv()
    frame = await fan.react("clan", message["_id"], "🔥")
    assert frame == {
        "chat": "clan",
        "event": "newReaction",
        "message": {
            **message,
            "reactions": [{"playerName": "Fan", "emoji": "🔥", "sender_id": fan_id}],
            "updatedAt": frame["message"]["updatedAt"],
        },
    }
    assert frame["message"]["updatedAt"] >= message["updatedAt"], "a reaction is a change: updatedAt moves on"
    assert await author.recv() == frame


async def test_new_emoji_replaces_and_moves_to_the_end_same_emoji_keeps_place(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    a_id, b_id = new_id(), new_id()
    a = await Client.connect(server, token(a_id, name="A"))
    b = await Client.connect(server, token(b_id, name="B"))
    message = await a.post("global", "emoji time")
    await b.recv()
    await a.react("global", message["_id"], "👍")
    await b.recv()
    await b.react("global", message["_id"], "🔥")
    await a.recv()

    def reactions(frame: dict[str, Any]) -> list[tuple[str, str]]:
        return [(r["playerName"], r["emoji"]) for r in frame["message"]["reactions"]]

    assert reactions(await a.react("global", message["_id"], "👍")) == [("A", "👍"), ("B", "🔥")]
    await b.recv()
    assert reactions(await a.react("global", message["_id"], "😂")) == [("B", "🔥"), ("A", "😂")]
    await b.recv()


@pytest.mark.parametrize("removal", [{"emoji": ""}, {"emoji": None}, {}], ids=["empty", "null", "missing"])
async def test_empty_or_missing_emoji_removes_the_reaction(
    server: ServerProcess, new_id: Callable[[], str], removal: dict[str, Any]
) -> None:
    client = await Client.connect(server, token(new_id(), name="R", clan_id=new_id()))
    message = await client.post("clan", "remove me")
    assert (await client.react("clan", message["_id"], "👍"))["message"]["reactions"] != []
    await client.send({"event": "clanMessageReaction", "data": {"message_id": message["_id"], **removal}})
    frame = await client.recv()
    assert (frame["event"], frame["message"]["reactions"]) == ("newReaction", [])


async def test_removing_a_reaction_that_does_not_exist_still_broadcasts(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    client = await Client.connect(server, token(new_id()))
    message = await client.post("global", "nothing to remove")
    frame = await client.react("global", message["_id"], "")
    # Like the game backend (mongoose timestamps), any reaction update moves updatedAt, a no-op too.
    unchanged = {**message, "updatedAt": frame["message"]["updatedAt"]}
    assert frame == {"chat": "global", "event": "newReaction", "message": unchanged}


@pytest.mark.parametrize(
    "emoji",
    ["🫡", "👨‍👩‍👧", "👍🏽", "🇫🇮", "❤️", "1️⃣"],
    ids=["salute", "zwj-family", "skin-tone", "flag", "heart", "keycap"],
)
async def test_any_single_emoji_grapheme_is_accepted(
    server: ServerProcess, new_id: Callable[[], str], emoji: str
) -> None:
    client = await Client.connect(server, token(new_id()))
    message = await client.post("global", "emoji zoo")
    frame = await client.react("global", message["_id"], emoji)
    assert frame["message"]["reactions"][0]["emoji"] == emoji


@pytest.mark.parametrize(
    ("emoji", "echoed"),
    [("a", "a"), ("🔥🔥", "🔥🔥"), ("fire", "fire"), (5, 5), (["🔥"], None), ({"$ne": None}, None)],
    ids=["letter", "two-emoji", "word", "number", "list", "operator"],
)
async def test_anything_but_one_emoji_is_a_validation_error(
    server: ServerProcess, new_id: Callable[[], str], emoji: Any, echoed: Any
) -> None:
    client = await Client.connect(server, token(new_id()))
    message = await client.post("global", "strict emoji")
    await client.send({"event": "globalMessageReaction", "data": {"message_id": message["_id"], "emoji": emoji}})
    assert await client.recv() == {
        "error": [
            {
                "reason": "VALIDATION",
                "field": "emoji",
                "value": echoed,
                "message": "emoji must be a single emoji",
                "additional": None,
            }
        ]
    }


@pytest.mark.parametrize(
    ("message_id", "error"),
    [
        (None, {"reason": "REQUIRED", "message": "message_id is required", "value": None}),
        ("123", {"reason": "VALIDATION", "message": "message_id must be a 24-character hex id", "value": "123"}),
        ({"$ne": None}, {"reason": "VALIDATION", "message": "message_id must be a 24-character hex id", "value": None}),
        ("z" * 24, {"reason": "VALIDATION", "message": "message_id must be a 24-character hex id", "value": "z" * 24}),
        (12345, {"reason": "VALIDATION", "message": "message_id must be a 24-character hex id", "value": 12345}),
    ],
    ids=["missing", "short", "operator-object", "not-hex", "number"],
)
async def test_bad_message_id_is_rejected_before_any_lookup(
    server: ServerProcess, new_id: Callable[[], str], message_id: Any, error: dict[str, Any]
) -> None:
    client = await Client.connect(server, token(new_id()))
    data = {"emoji": "🔥"} if message_id is None else {"message_id": message_id, "emoji": "🔥"}
    await client.send({"event": "globalMessageReaction", "data": data, "ref": "x"})
    assert await client.recv() == {"error": [{"field": "message_id", "additional": None, **error}], "ref": "x"}


async def test_reaction_on_an_unknown_message_is_not_found(server: ServerProcess, new_id: Callable[[], str]) -> None:
    client = await Client.connect(server, token(new_id(), clan_id=new_id()))
    missing = new_id()
    assert await client.react("global", missing, "🔥") == not_found(missing)
    assert await client.react("clan", missing, "🔥") == not_found(missing)


async def test_global_reaction_on_a_clan_message_is_not_found(server: ServerProcess, new_id: Callable[[], str]) -> None:
    client = await Client.connect(server, token(new_id(), clan_id=new_id()))
    message = await client.post("clan", "clan only")
    assert await client.react("global", message["_id"], "🔥") == not_found(message["_id"])


async def test_clan_reaction_on_a_global_message_is_not_found(server: ServerProcess, new_id: Callable[[], str]) -> None:
    client = await Client.connect(server, token(new_id(), clan_id=new_id()))
    message = await client.post("global", "global only")
    assert await client.react("clan", message["_id"], "🔥") == not_found(message["_id"])


async def test_clanless_player_reacting_in_clan_chat_is_not_allowed(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    member = await Client.connect(server, token(new_id(), clan_id=new_id()))
    message = await member.post("clan", "members only")
    loner = await Client.connect(server, token(new_id()))
    assert await loner.react("clan", message["_id"], "🔥") == {
        "error": [
            {
                "reason": "NOT_ALLOWED",
                "field": "clan_id",
                "value": None,
                "message": "Player is not a member of a clan",
                "additional": None,
            }
        ]
    }


async def test_fifty_players_reacting_at_once_are_all_kept(server: ServerProcess, new_id: Callable[[], str]) -> None:
    clan = new_id()
    author = await Client.connect(server, token(new_id(), name="Host", clan_id=clan))
    message = await author.post("clan", "pile on")
    fans = await asyncio.gather(
        *(Client.connect(server, token(new_id(), name=f"fan{n}", clan_id=clan)) for n in range(50))
    )
    await asyncio.gather(
        *(
            fan.send({"event": "clanMessageReaction", "data": {"message_id": message["_id"], "emoji": "🎉"}})
            for fan in fans
        )
    )
    # Concurrent reactions are published in whatever order their writes finish; a frame whose state is
    # older than one already delivered is not sent after it, so every socket's view only moves forward.
    versions: list[str] = []
    last: dict[str, Any] = {"message": {"reactions": []}}
    while len(last["message"]["reactions"]) < 50:
        last = await author.recv()
        assert last["event"] == "newReaction"
        versions.append(last["message"]["updatedAt"])
    assert versions == sorted(set(versions)), "each frame a later version of the message"
    assert sorted(r["playerName"] for r in last["message"]["reactions"]) == sorted(f"fan{n}" for n in range(50))
