"""Reading history over HTTP: the game backend's envelope, page and cursor pagination, and the error bodies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.harness import Client, ServerProcess, token


def history(server: ServerProcess, bearer: str | None, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return httpx.get(f"{server.http_url}/chat/history", params=params, headers=headers, timeout=5)


def error_body(
    status: int, reason: str, field: str | None, message: str, value: Any = None, additional: Any = None
) -> dict[str, Any]:
    return {
        "errors": [{"reason": reason, "field": field, "value": value, "message": message, "additional": additional}],
        "statusCode": status,
    }


async def post_many(client: Client, chat: str, count: int) -> list[dict[str, Any]]:
    return [await client.post(chat, f"message {n}") for n in range(count)]


async def test_clan_history_is_newest_first_in_the_game_envelope(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    bearer = token(new_id(), name="Historian", clan_id=new_id())
    client = await Client.connect(server, bearer)
    sent = await post_many(client, "clan", 3)
    sent[1] = (await client.react("clan", sent[1]["_id"], "👍"))["message"]
    response = history(server, bearer, type="clan")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "data": {"ChatMessage": sent[::-1]},
        "metaData": {"dataKey": "ChatMessage", "modelName": "ChatMessage", "dataType": "Array", "dataCount": 3},
        "paginationData": {"currentPage": 1, "limit": 20, "offset": 0, "itemCount": 3, "pageCount": 1},
    }


async def test_pages_walk_backwards_through_the_room(server: ServerProcess, new_id: Callable[[], str]) -> None:
    bearer = token(new_id(), clan_id=new_id())
    client = await Client.connect(server, bearer)
    sent = await post_many(client, "clan", 7)
    newest_first = [m["_id"] for m in reversed(sent)]
    pages = [history(server, bearer, type="clan", limit=3, page=page).json() for page in (1, 2, 3, 4)]
    assert [[m["_id"] for m in p["data"]["ChatMessage"]] for p in pages] == [
        newest_first[0:3],
        newest_first[3:6],
        newest_first[6:7],
        [],
    ]
    assert pages[1]["paginationData"] == {"currentPage": 2, "limit": 3, "offset": 3, "itemCount": 7, "pageCount": 3}
    assert pages[3]["metaData"]["dataCount"] == 0


async def test_before_cursor_walks_backwards_without_gaps(server: ServerProcess, new_id: Callable[[], str]) -> None:
    bearer = token(new_id(), clan_id=new_id())
    client = await Client.connect(server, bearer)
    sent = await post_many(client, "clan", 7)
    expected = [m["_id"] for m in reversed(sent)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"type": "clan", "limit": 3, **({"before": cursor} if cursor else {})}
        page = history(server, bearer, **params).json()
        ids = [m["_id"] for m in page["data"]["ChatMessage"]]
        if not ids:
            break
        seen += ids
        cursor = ids[-1]
        assert page["paginationData"]["itemCount"] == 7
    assert seen == expected


async def test_global_history_works_for_a_clanless_player(server: ServerProcess, new_id: Callable[[], str]) -> None:
    bearer = token(new_id())
    client = await Client.connect(server, bearer)
    message = await client.post("global", "for the record")
    body = history(server, bearer, type="global", limit=50).json()
    assert message in body["data"]["ChatMessage"]


async def test_missing_type_reads_the_global_room(server: ServerProcess, new_id: Callable[[], str]) -> None:
    bearer = token(new_id(), clan_id=new_id())
    client = await Client.connect(server, bearer)
    message = await client.post("global", "default room")
    assert history(server, bearer).json()["data"]["ChatMessage"][0] == message


async def test_limit_is_clamped_to_fifty(server: ServerProcess, new_id: Callable[[], str]) -> None:
    bearer = token(new_id(), clan_id=new_id())
    assert history(server, bearer, type="clan", limit=500).json()["paginationData"]["limit"] == 50
    assert history(server, bearer, type="clan", limit=0).json()["paginationData"]["limit"] == 20


async def test_a_clan_history_never_holds_another_clans_messages(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    mine, theirs = token(new_id(), clan_id=new_id()), token(new_id(), clan_id=new_id())
    await (await Client.connect(server, theirs)).post("clan", "theirs")
    assert history(server, mine, type="clan").json()["data"]["ChatMessage"] == []


def test_no_token_is_401(server: ServerProcess) -> None:
    response = history(server, None, type="global")
    assert response.status_code == 401
    assert response.json() == error_body(401, "NOT_AUTHENTICATED", "token", "The access token is not provided")


def test_expired_token_is_401(server: ServerProcess, new_id: Callable[[], str]) -> None:
    response = history(server, token(new_id(), exp_in=-5), type="global")
    assert (response.status_code, response.json()) == (
        401,
        error_body(401, "AUTHENTICATION_FAILED", "token", "The access token is expired"),
    )


def test_clan_history_without_a_clan_is_403(server: ServerProcess, new_id: Callable[[], str]) -> None:
    response = history(server, token(new_id()), type="clan")
    assert (response.status_code, response.json()) == (
        403,
        error_body(403, "NOT_AUTHORIZED", "clan_id", "Player is not a member of a clan"),
    )


@pytest.mark.parametrize(
    ("params", "body"),
    [
        (
            {"type": "private"},
            error_body(
                400, "WRONG_ENUM", "type", "type must be clan or global", "private", {"allowed": ["clan", "global"]}
            ),
        ),
        (
            # 4,000 characters: under the request-line bound (a 10,000-character URL is 414 before the app)
            {"type": "x" * 4_000},
            error_body(
                400, "WRONG_ENUM", "type", "type must be clan or global", "x" * 64, {"allowed": ["clan", "global"]}
            ),
        ),
        ({"page": "0"}, error_body(400, "VALIDATION", "page", "page must be 1 or more", 0)),
        ({"page": "two"}, error_body(400, "VALIDATION", "page", "page must be a whole number", "two")),
        (
            {"page": "99999999999999999999"},
            error_body(400, "MORE_THAN_MAX", "page", "page must be at most 1000000", 99999999999999999999),
        ),
        ({"limit": "ten"}, error_body(400, "VALIDATION", "limit", "limit must be a whole number", "ten")),
        ({"before": "nope"}, error_body(400, "VALIDATION", "before", "before must be a 24-character hex id", "nope")),
    ],
    ids=[
        "unknown-type",
        "huge-type-cut",
        "page-zero",
        "page-word",
        "page-beyond-64-bit-skip",
        "limit-word",
        "before-not-id",
    ],
)
def test_bad_query_is_400_with_the_reason(
    server: ServerProcess, new_id: Callable[[], str], params: dict[str, str], body: dict[str, Any]
) -> None:
    response = history(server, token(new_id(), clan_id=new_id()), **params)
    assert (response.status_code, response.json()) == (400, body)


def test_unknown_before_cursor_is_404(server: ServerProcess, new_id: Callable[[], str]) -> None:
    missing = new_id()
    response = history(server, token(new_id()), type="global", before=missing)
    assert (response.status_code, response.json()) == (
        404,
        error_body(404, "NOT_FOUND", "_id", "Could not find any objects with specified id", missing),
    )
