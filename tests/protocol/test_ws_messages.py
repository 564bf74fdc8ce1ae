"""Sending clanMessage / globalMessage: the broadcast every room member sees, and every validation rule."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.harness import Client, ServerProcess, token

ALL_EVENTS = [
    "clanMessage", "globalMessage", "clanMessageReaction", "globalMessageReaction",
    "clanMessageEdit", "globalMessageEdit", "clanMessageDelete", "globalMessageDelete",
    "clanMessageReport", "globalMessageReport",
]  # fmt: skip

ISO_MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
AVATAR = {"head": {"id": 3, "color": "#ff0000"}, "skinColor": "#aabbcc"}


def detail(reason: str, field: str | None, message: str, value: Any = None, additional: Any = None) -> dict[str, Any]:
    return {"reason": reason, "field": field, "value": value, "message": message, "additional": additional}


async def test_clan_message_reaches_the_sender_with_every_protocol_field(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    player, clan = new_id(), new_id()
    client = await Client.connect(server, token(player, name="Alice", clan_id=clan, avatar=AVATAR))
    await client.send({"event": "clanMessage", "data": {"content": "Hello clan!", "feeling": "happy"}})
    frame = await client.recv()
    message = frame["message"]
    assert OBJECT_ID.match(message["_id"]) and ISO_MILLIS.match(message["createdAt"])
    assert message["updatedAt"] == message["createdAt"]
    assert frame == {
        "chat": "clan",
        "event": "newMessage",
        "message": {
            "_id": message["_id"],
            "clan_id": clan,
            "sender": {"_id": player, "name": "Alice", "avatar": AVATAR},
            "content": "Hello clan!",
            "feeling": "happy",
            "type": "clan",
            "reactions": [],
            "createdAt": message["createdAt"],
            "updatedAt": message["createdAt"],
        },
    }
    assert list(message) == [
        "_id", "clan_id", "sender", "content", "feeling", "type", "reactions", "createdAt", "updatedAt"
    ]  # fmt: skip


async def test_global_message_has_no_clan_id_and_no_feeling_when_none_given(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    player = new_id()
    client = await Client.connect(server, token(player, name="Bob", clan_id=new_id()))
    await client.send({"event": "globalMessage", "data": {"content": "Hello world!"}})
    frame = await client.recv()
    assert frame["chat"] == "global" and frame["event"] == "newMessage"
    assert frame["message"] == {
        "_id": frame["message"]["_id"],
        "sender": {"_id": player, "name": "Bob", "avatar": None},
        "content": "Hello world!",
        "type": "global",
        "reactions": [],
        "createdAt": frame["message"]["createdAt"],
        "updatedAt": frame["message"]["createdAt"],
    }


async def test_global_message_reaches_every_connected_player(server: ServerProcess, new_id: Callable[[], str]) -> None:
    clients = [await Client.connect(server, token(new_id(), clan_id=new_id())) for _ in range(3)]
    clanless = await Client.connect(server, token(new_id()))
    marker = f"to all {new_id()}"
    await clients[0].send({"event": "globalMessage", "data": {"content": marker}})
    for client in [*clients, clanless]:
        frame = await client.recv()
        assert (frame["chat"], frame["message"]["content"]) == ("global", marker)


async def test_content_is_stored_and_sent_trimmed(server: ServerProcess, new_id: Callable[[], str]) -> None:
    client = await Client.connect(server, token(new_id()))
    message = await client.post("global", "  \t spaced out \n ")
    assert message["content"] == "spaced out"


async def test_player_name_defaults_to_the_player_id_without_a_name_claim(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    player = new_id()
    client = await Client.connect(server, token(player))
    message = await client.post("global", "who am I")
    assert message["sender"] == {"_id": player, "name": player, "avatar": None}


async def test_content_of_exactly_the_limit_in_emoji_code_points_is_accepted(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    client = await Client.connect(server, token(new_id()))
    message = await client.post("global", "🔥" * 256)
    assert message["content"] == "🔥" * 256


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({}, [detail("REQUIRED", "content", "content is required")]),
        ({"content": None}, [detail("REQUIRED", "content", "content is required")]),
        ({"content": 42}, [detail("NOT_STRING", "content", "content must be a string", 42)]),
        ({"content": ["a"]}, [detail("NOT_STRING", "content", "content must be a string")]),
        ({"content": "   "}, [detail("REQUIRED", "content", "content must not be empty", "   ")]),
        ({"content": "\ufeff\u3000\n"}, [detail("REQUIRED", "content", "content must not be empty", "\ufeff\u3000\n")]),
        ({"content": " " * 100}, [detail("REQUIRED", "content", "content must not be empty")]),
        (
            {"content": "x" * 257},
            [
                detail(
                    "MORE_THAN_MAX",
                    "content",
                    "content must be shorter than or equal to 256 characters",
                    additional={"max": 256},
                )
            ],
        ),
        ({"content": "ok", "feeling": 7}, [detail("NOT_STRING", "feeling", "feeling must be a string", 7)]),
        (
            {"content": "ok", "feeling": "f" * 33},
            [
                detail(
                    "MORE_THAN_MAX",
                    "feeling",
                    "feeling must be shorter than or equal to 32 characters",
                    additional={"max": 32},
                )
            ],
        ),
        (
            {"content": 1, "feeling": {"$ne": None}},
            [
                detail("NOT_STRING", "content", "content must be a string", 1),
                detail("NOT_STRING", "feeling", "feeling must be a string"),
            ],
        ),
    ],
    ids=[
        "missing-content",
        "null-content",
        "number-content",
        "list-content",
        "blank-content",
        "blank-by-javascript-trim",
        "long-blank-not-echoed",
        "too-long-content",
        "number-feeling",
        "too-long-feeling",
        "two-bad-fields",
    ],
)
async def test_invalid_message_gets_one_error_frame_and_the_socket_stays_open(
    server: ServerProcess, new_id: Callable[[], str], data: dict[str, Any], errors: list[dict[str, Any]]
) -> None:
    client = await Client.connect(server, token(new_id(), clan_id=new_id()))
    await client.send({"event": "globalMessage", "data": data, "ref": "m-1"})
    assert await client.recv() == {"error": errors, "ref": "m-1"}
    message = await client.post("global", "still here")
    assert message["content"] == "still here"


@pytest.mark.parametrize(
    ("frame", "reply"),
    [
        ("this is not json", {"error": "Invalid JSON"}),
        ("[1, 2, 3]", {"error": "Invalid JSON"}),
        ('"just a string"', {"error": "Invalid JSON"}),
        (
            {"data": {"content": "x"}, "ref": "r"},
            {
                "error": [
                    detail(
                        "NOT_ALLOWED",
                        "event",
                        f"event must be one of {', '.join(ALL_EVENTS)}",
                        additional={"allowed": ALL_EVENTS},
                    )
                ],
                "ref": "r",
            },
        ),
        (
            {"event": "privateMessage", "data": {"content": "x"}},
            {
                "error": [
                    detail(
                        "NOT_ALLOWED",
                        "event",
                        f"event must be one of {', '.join(ALL_EVENTS)}",
                        "privateMessage",
                        {"allowed": ALL_EVENTS},
                    )
                ]
            },
        ),
        ({"event": "globalMessage"}, {"error": [detail("REQUIRED", "data", "data is required")]}),
        ({"event": "globalMessage", "data": "hi"}, {"error": [detail("NOT_OBJECT", "data", "data must be an object")]}),
        (
            {"event": "globalMessage", "data": {"content": "x"}, "ref": 12},
            {"error": [detail("VALIDATION", "ref", "ref must be a string of at most 64 characters")]},
        ),
        (
            {"event": "globalMessage", "data": {"content": "x"}, "ref": "r" * 65},
            {"error": [detail("VALIDATION", "ref", "ref must be a string of at most 64 characters")]},
        ),
    ],
    ids=[
        "not-json",
        "array",
        "string",
        "no-event",
        "unknown-event",
        "no-data",
        "data-not-object",
        "ref-number",
        "ref-long",
    ],
)
async def test_malformed_frame_gets_one_error_frame(
    server: ServerProcess, new_id: Callable[[], str], frame: Any, reply: dict[str, Any]
) -> None:
    client = await Client.connect(server, token(new_id()))
    await client.send(frame)
    assert await client.recv() == reply
    assert (await client.post("global", "after the bad frame"))["content"] == "after the bad frame"


async def test_binary_frame_with_json_is_handled_like_text(server: ServerProcess, new_id: Callable[[], str]) -> None:
    client = await Client.connect(server, token(new_id()))
    await client.send(b'{"event": "globalMessage", "data": {"content": "bytes"}}')
    assert (await client.recv())["message"]["content"] == "bytes"
    await client.send(b"\xff\xfe")
    assert await client.recv() == {"error": "Invalid JSON"}


async def test_invalid_utf8_inside_a_binary_frame_is_invalid_json_not_replaced(
    embedded_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    client = await Client.connect(embedded_server, token(new_id()))
    await client.send(b'{"event": "globalMessage", "data": {"content": "bad \xff byte"}}')
    assert await client.recv() == {"error": "Invalid JSON"}


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("\u202eevil.exe\u202c txt", "evil.exe txt"),  # a bidi override would show "txt exe.live"
        ("\x1b[31mred\x1b[0m alert", "[31mred[0m alert"),  # ANSI escapes lose their ESC: inert text
        ("tab\tand\nnew line", "tab\tand\nnew line"),
        ("\u05e9\u05dc\u05d5\u05dd \u200fRTL mark", "\u05e9\u05dc\u05d5\u05dd \u200fRTL mark"),
        ("zero\u200bwidth inside", "zero\u200bwidth inside"),
    ],
    ids=["bidi-override", "ansi-escape", "tab-newline", "rtl-mark", "zero-width-inside"],
)
async def test_controls_that_change_what_others_see_are_removed(
    embedded_server: ServerProcess, new_id: Callable[[], str], sent: str, stored: str
) -> None:
    client = await Client.connect(embedded_server, token(new_id()))
    assert (await client.post("global", sent))["content"] == stored


@pytest.mark.parametrize("sent", ["\u200b", "\u200d\u200b\u2060", "\u0301", "\x1b\x07", " \u202e "])
async def test_content_with_nothing_visible_is_refused_as_empty(
    embedded_server: ServerProcess, new_id: Callable[[], str], sent: str
) -> None:
    client = await Client.connect(embedded_server, token(new_id()))
    await client.send({"event": "globalMessage", "data": {"content": sent}})
    assert (await client.recv())["error"] == [
        {
            "reason": "REQUIRED",
            "field": "content",
            "value": sent,
            "message": "content must not be empty",
            "additional": None,
        }
    ]


async def test_frame_over_the_size_limit_gets_an_error_and_the_socket_stays(
    embedded_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    client = await Client.connect(embedded_server, token(new_id()))
    await client.send({"event": "globalMessage", "data": {"content": "x" * 9000}})
    assert await client.recv() == {"error": "Frame too large"}
    assert (await client.post("global", "small again"))["content"] == "small again"


async def test_frame_over_the_transport_limit_closes_with_1009(
    embedded_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    client = await Client.connect(embedded_server, token(new_id()))
    await client.send("x" * (64 * 1024 + 1))
    await client.connection.wait_closed()
    assert client.connection.close_code == 1009


async def test_clan_message_from_a_clanless_player_is_not_allowed(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    client = await Client.connect(server, token(new_id()))
    await client.send({"event": "clanMessage", "data": {"content": "anyone?"}, "ref": "c"})
    assert await client.recv() == {
        "error": [detail("NOT_ALLOWED", "clan_id", "Player is not a member of a clan")],
        "ref": "c",
    }


async def test_messages_from_one_sender_arrive_in_send_order(server: ServerProcess, new_id: Callable[[], str]) -> None:
    clan = new_id()
    sender = await Client.connect(server, token(new_id(), clan_id=clan))
    reader = await Client.connect(server, token(new_id(), clan_id=clan))
    for n in range(30):
        await sender.send({"event": "clanMessage", "data": {"content": f"n{n}"}})
    for client in (reader, sender):
        seen = [(await client.recv())["message"]["content"] for _ in range(30)]
        assert seen == [f"n{n}" for n in range(30)]
