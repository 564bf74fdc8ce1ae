"""Clan membership changes on one server: the internal endpoint, the CLI, and what the player's sockets see."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.support.harness import NOT_MEMBER, ROOT, Client, ServerProcess, token

SERVICE_TOKEN = "service-token-for-membership-tests"


@pytest.fixture(scope="module")
def membership_server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(CHAT_INTERNAL_TOKEN=SERVICE_TOKEN)


def post_change(server: ServerProcess, body: Any, bearer: str | None = SERVICE_TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return httpx.post(f"{server.http_url}/internal/membership", json=body, headers=headers, timeout=5)


def http_error(status: int, reason: str, field: str | None, message: str) -> dict[str, Any]:
    return {
        "errors": [{"reason": reason, "field": field, "value": None, "message": message, "additional": None}],
        "statusCode": status,
    }


async def assert_next_is_global(client: Client, content: str) -> None:
    """The next frame is the global sentinel: nothing from the old clan room slipped in before it."""
    frame = await client.recv()
    assert (frame.get("chat"), frame.get("message", {}).get("content")) == ("global", content), frame


async def test_leave_moves_every_socket_of_the_player_out_of_the_clan(
    membership_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    player, clan = new_id(), new_id()
    phone = await Client.connect(membership_server, token(player, clan_id=clan))
    editor = await Client.connect(membership_server, token(player, clan_id=clan))
    mate = await Client.connect(membership_server, token(new_id(), clan_id=clan))
    earlier = await mate.post("clan", "before you go")
    for socket in (phone, editor):
        await socket.recv()

    response = post_change(membership_server, {"player_id": player, "action": "leave", "clan_id": clan})
    assert (response.status_code, response.json()) == (202, {"player_id": player, "action": "leave", "clan_id": clan})
    for socket in (phone, editor):
        assert await socket.recv() == {"event": "clanLeft", "data": {"clan_id": clan}}

    await mate.post("clan", "after you left")
    await mate.send({"event": "globalMessage", "data": {"content": "sentinel"}})
    await assert_next_is_global(phone, "sentinel")
    await phone.send({"event": "clanMessage", "data": {"content": "let me back"}})
    assert await phone.recv() == {"error": [NOT_MEMBER]}
    await phone.send({"event": "clanMessageReaction", "data": {"message_id": earlier["_id"], "emoji": "😢"}})
    assert await phone.recv() == {"error": [NOT_MEMBER]}


async def test_join_moves_the_player_from_the_old_clan_into_the_new_one(
    membership_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    player, old_clan, new_clan = new_id(), new_id(), new_id()
    mover = await Client.connect(membership_server, token(player, clan_id=old_clan))
    new_mate = await Client.connect(membership_server, token(new_id(), clan_id=new_clan))
    old_mate = await Client.connect(membership_server, token(new_id(), clan_id=old_clan))

    assert (
        post_change(membership_server, {"player_id": player, "action": "join", "clan_id": new_clan}).status_code == 202
    )
    assert await mover.recv() == {"event": "clanLeft", "data": {"clan_id": old_clan}}
    assert await mover.recv() == {"event": "clanJoined", "data": {"clan_id": new_clan}}

    welcome = await new_mate.post("clan", "welcome")
    assert (await mover.recv())["message"] == welcome
    await old_mate.post("clan", "old news")
    await old_mate.send({"event": "globalMessage", "data": {"content": "sentinel-2"}})
    await assert_next_is_global(mover, "sentinel-2")
    sent = await mover.post("clan", "hi new clan")
    assert sent["clan_id"] == new_clan


async def test_join_of_a_clanless_player_only_says_joined(
    membership_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    player, clan = new_id(), new_id()
    loner = await Client.connect(membership_server, token(player))
    post_change(membership_server, {"player_id": player, "action": "join", "clan_id": clan})
    assert await loner.recv() == {"event": "clanJoined", "data": {"clan_id": clan}}
    assert (await loner.post("clan", "first post"))["clan_id"] == clan


async def test_leave_of_a_clan_the_player_is_not_in_changes_nothing(
    membership_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    player, clan = new_id(), new_id()
    member = await Client.connect(membership_server, token(player, clan_id=clan))
    post_change(membership_server, {"player_id": player, "action": "leave", "clan_id": new_id()})
    assert (await member.post("clan", "still in"))["clan_id"] == clan


def test_membership_without_a_service_token_is_401(membership_server: ServerProcess) -> None:
    response = post_change(membership_server, {"player_id": "p", "action": "leave", "clan_id": "c"}, bearer=None)
    assert (response.status_code, response.json()) == (
        401,
        http_error(401, "NOT_AUTHENTICATED", "token", "The service token is not provided"),
    )


def test_membership_with_a_wrong_service_token_is_403(membership_server: ServerProcess) -> None:
    response = post_change(membership_server, {"player_id": "p", "action": "leave", "clan_id": "c"}, bearer="guess")
    assert (response.status_code, response.json()) == (
        403,
        http_error(403, "NOT_AUTHORIZED", "token", "The service token is not valid"),
    )


def test_membership_endpoint_is_disabled_without_chat_internal_token(embedded_server: ServerProcess) -> None:
    response = post_change(embedded_server, {"player_id": "p", "action": "leave", "clan_id": "c"})
    assert (response.status_code, response.json()) == (
        403,
        http_error(403, "NOT_AUTHORIZED", "token", "The internal API is disabled: CHAT_INTERNAL_TOKEN is not set"),
    )


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"player_id": "p", "action": "kick", "clan_id": "c"}, ["action"]),
        ({"action": "leave", "clan_id": "c"}, ["player_id"]),
        ({"player_id": "", "action": "join", "clan_id": ""}, ["player_id", "clan_id"]),
        ({"player_id": {"$ne": None}, "action": "join", "clan_id": "c"}, ["player_id"]),
        ([1, 2], [None]),
    ],
    ids=["unknown-action", "no-player", "empty-ids", "operator-object", "not-an-object"],
)
def test_malformed_membership_change_is_400_naming_each_field(
    membership_server: ServerProcess, body: Any, fields: list[str | None]
) -> None:
    response = post_change(membership_server, body)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["reason"], e["field"]) for e in errors] == [("VALIDATION", f) for f in fields]
    assert all(e["message"] for e in errors)


async def test_cli_membership_posts_to_a_server_url(
    membership_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    player, clan = new_id(), new_id()
    member = await Client.connect(membership_server, token(player, clan_id=clan))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CHAT_"))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatserver",
            "membership",
            "leave",
            "--player-id",
            player,
            "--clan-id",
            clan,
            "--url",
            membership_server.http_url,
        ],
        env={**env, "CHAT_INTERNAL_TOKEN": SERVICE_TOKEN},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert await member.recv() == {"event": "clanLeft", "data": {"clan_id": clan}}


def test_cli_membership_without_redis_or_url_explains_what_it_needs() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CHAT_"))}
    result = subprocess.run(
        [sys.executable, "-m", "chatserver", "membership", "join", "--player-id", "p", "--clan-id", "c"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "REDIS_URL" in result.stderr and "--url" in result.stderr
