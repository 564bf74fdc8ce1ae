"""Claims mode honours membership changes: a token signed before a leave no longer reads or joins the clan.

Over real sockets on one server (the in-process ledger) and on replicas sharing Redis, including a
replica that was down when the leave was published; the voiding rule itself in-process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from chatserver.clan_ledger import PlayerChanges
from tests.conftest import ServerFactory
from tests.support.harness import NOT_MEMBER, Client, ServerProcess, suite_env, token
from tests.support.redis_topology import TOPOLOGIES, key_exists, replicas_on
from tools.cluster import Cluster

SERVICE_TOKEN = "service-token-for-the-clan-ledger-tests"


@pytest.fixture(scope="module")
def claims_server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(CHAT_INTERNAL_TOKEN=SERVICE_TOKEN)


def change(server: ServerProcess, player: str, action: str, clan: str) -> None:
    response = httpx.post(
        f"{server.http_url}/internal/membership",
        json={"player_id": player, "action": action, "clan_id": clan},
        headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
        timeout=5,
    )
    assert response.status_code == 202, response.text


def clan_history(url: str, bearer: str) -> httpx.Response:
    return httpx.get(
        f"{url}/chat/history", params={"type": "clan"}, headers={"Authorization": f"Bearer {bearer}"}, timeout=5
    )


NOT_A_MEMBER_BODY = {
    "errors": [
        {
            "reason": "NOT_AUTHORIZED",
            "field": "clan_id",
            "value": None,
            "message": "Player is not a member of a clan",
            "additional": None,
        }
    ],
    "statusCode": 403,
}


async def assert_outside_the_clan(ws_url: str, http_url: str, bearer: str, mate: Client) -> None:
    """A new socket on ``bearer`` is in no clan room and the clan's history is refused."""
    response = clan_history(http_url, bearer)
    assert (response.status_code, response.json()) == (403, NOT_A_MEMBER_BODY)
    socket = await Client.open(ws_url, bearer)
    await mate.post("clan", "not for you")
    await mate.send({"event": "globalMessage", "data": {"content": "sentinel"}})
    frame = await socket.recv()
    assert (frame.get("chat"), frame["message"]["content"]) == ("global", "sentinel")
    await socket.send({"event": "clanMessage", "data": {"content": "let me back"}})
    assert await socket.recv() == {"error": [NOT_MEMBER]}


async def test_a_kicked_players_old_token_no_longer_reads_or_joins_the_clan(
    claims_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    player, clan = new_id(), new_id()
    old_token = token(player, clan_id=clan, iat=int(time.time()))
    mate = await Client.connect(claims_server, token(new_id(), clan_id=clan))
    await mate.post("clan", "before the kick")
    assert clan_history(claims_server.http_url, old_token).status_code == 200

    change(claims_server, player, "leave", clan)
    await assert_outside_the_clan(claims_server.ws_url, claims_server.http_url, old_token, mate)


async def test_a_token_signed_after_the_leave_or_after_a_rejoin_is_honoured(
    claims_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    player, clan = new_id(), new_id()
    old_token = token(player, clan_id=clan)
    change(claims_server, player, "leave", clan)
    await asyncio.sleep(1.1)  # iat is in whole seconds: a token of the same second counts as older
    fresh = token(player, clan_id=clan, iat=int(time.time()))
    assert clan_history(claims_server.http_url, fresh).status_code == 200
    assert clan_history(claims_server.http_url, old_token).status_code == 403

    change(claims_server, player, "join", clan)
    assert clan_history(claims_server.http_url, old_token).status_code == 200
    rejoined = await Client.connect(claims_server, old_token)
    assert (await rejoined.post("clan", "back again"))["clan_id"] == clan


async def test_a_join_of_another_clan_voids_the_old_clan_in_older_tokens(
    claims_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    player, old_clan, new_clan = new_id(), new_id(), new_id()
    old_token = token(player, clan_id=old_clan)
    old_mate = await Client.connect(claims_server, token(new_id(), clan_id=old_clan))
    change(claims_server, player, "join", new_clan)
    await assert_outside_the_clan(claims_server.ws_url, claims_server.http_url, old_token, old_mate)


async def test_a_leave_of_another_clan_changes_nothing_for_the_claimed_one(
    claims_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    player, clan = new_id(), new_id()
    change(claims_server, player, "leave", new_id())
    member = await Client.connect(claims_server, token(player, clan_id=clan))
    assert (await member.post("clan", "still in"))["clan_id"] == clan


@pytest.mark.parametrize("topology", TOPOLOGIES)
async def test_a_replica_started_after_the_leave_honours_it_through_redis(
    tmp_path: Path, new_id: Callable[[], str], topology: str
) -> None:
    player, clan = new_id(), new_id()
    old_token = token(player, clan_id=clan)
    with replicas_on(topology, tmp_path / "c", suite_env(), replicas=2) as cluster:
        cluster.stop_replica(1)
        with redis.Redis.from_url(cluster.redis_url) as admin:  # any node takes a plain PUBLISH
            admin.publish("chat:membership", f'{{"player_id": "{player}", "action": "leave", "clan_id": "{clan}"}}')
        deadline = time.monotonic() + 5
        while not key_exists(cluster, topology, f"chat:clans:{player}"):
            assert time.monotonic() < deadline, "replica 0 never recorded the leave"
            await asyncio.sleep(0.05)
        cluster.start_replica(1)
        mate = await Client.open(cluster.replicas[0].ws_url, token(new_id(), clan_id=clan))
        replica = cluster.replicas[1]
        await assert_outside_the_clan(replica.ws_url, replica.url, old_token, mate)


async def test_while_redis_is_down_a_clan_claim_is_trusted_as_written(
    tmp_path: Path, new_id: Callable[[], str]
) -> None:
    player, clan = new_id(), new_id()
    bearer = token(player, clan_id=clan)
    with Cluster(1, workdir=tmp_path / "c", env=suite_env()) as cluster:
        replica = cluster.replicas[0]
        cluster.stop_redis()
        response = clan_history(replica.url, bearer)
        assert (response.status_code, response.json()["data"]["ChatMessage"]) == (200, [])
        log = replica.log_path.read_text()
        assert "clan ledger unavailable" in log and player in log


LEFT_AT, JOINED_AT = 1000.0, 2000.0


@pytest.mark.parametrize(
    ("changes", "claim", "issued_at", "void"),
    [
        ({"left": {"x": LEFT_AT}}, "x", None, True),
        ({"left": {"x": LEFT_AT}}, "x", LEFT_AT, True),
        ({"left": {"x": LEFT_AT}}, "x", LEFT_AT + 1, False),
        ({"left": {"x": LEFT_AT}}, "y", None, False),
        ({"left": {"x": LEFT_AT}, "joined": ("x", JOINED_AT)}, "x", None, False),
        ({"left": {"x": JOINED_AT + 1}, "joined": ("x", JOINED_AT)}, "x", JOINED_AT, True),
        ({"joined": ("y", JOINED_AT)}, "x", JOINED_AT - 1, True),
        ({"joined": ("y", JOINED_AT)}, "x", JOINED_AT + 1, False),
        ({"left": {"x": LEFT_AT}, "joined": ("y", JOINED_AT)}, "x", LEFT_AT + 1, True),
    ],
)
def test_a_claim_is_void_when_a_later_change_took_the_player_out_of_that_clan(
    changes: dict[str, Any], claim: str, issued_at: float | None, void: bool
) -> None:
    assert PlayerChanges(**changes).voids(claim, issued_at) is void
