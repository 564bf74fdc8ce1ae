"""Abuse limits as a flooding client sees them: per-player rates (shared by replicas), sockets per
player, history reads, and the keep-alive ping that drops clients which never answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import ServerFactory
from tests.support.harness import Client, ServerProcess, StuckClient, suite_env, token
from tools.cluster import Cluster

BURST = 5
SLOW_REFILL = "0.2"  # a token every 5 s: none comes back during a test's burst


def too_many(kind: str, retry_after_ms: int, ref: str | None = None) -> dict[str, Any]:
    """The error frame a client over its rate gets (docs/protocol.md §7), as it must read it."""
    frame: dict[str, Any] = {
        "error": [
            {
                "reason": "TOO_MANY_REQUESTS",
                "field": None,
                "value": None,
                "message": f"Too many {kind}; try again in a moment",
                "additional": {"retry_after_ms": retry_after_ms},
            }
        ]
    }
    if ref is not None:
        frame["ref"] = ref
    return frame


def retry_after(frame: dict[str, Any]) -> int:
    wait_ms = frame["error"][0]["additional"]["retry_after_ms"]
    assert isinstance(wait_ms, int) and 0 < wait_ms <= 5000, frame
    return wait_ms


@pytest.fixture(scope="module")
def limited_server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(
        CHAT_MESSAGE_RATE=SLOW_REFILL,
        CHAT_MESSAGE_BURST=str(BURST),
        CHAT_REACTION_RATE=SLOW_REFILL,
        CHAT_REACTION_BURST=str(BURST),
        CHAT_HISTORY_RATE=SLOW_REFILL,
        CHAT_HISTORY_BURST=str(BURST),
        CHAT_MAX_SOCKETS_PER_PLAYER="2",
    )


async def test_a_message_flood_gets_too_many_requests_and_only_the_burst_is_stored(
    limited_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    clan, player = new_id(), new_id()
    flooder = await Client.connect(limited_server, token(player, clan_id=clan))
    for n in range(BURST + 3):
        await flooder.send({"event": "clanMessage", "data": {"content": f"flood {n}"}, "ref": f"r{n}"})
    outcomes = [await flooder.recv() for _ in range(BURST + 3)]
    assert [frame["message"]["content"] for frame in outcomes[:BURST]] == [f"flood {n}" for n in range(BURST)]
    for n, frame in enumerate(outcomes[BURST:], start=BURST):
        assert frame == too_many("messages", retry_after(frame), ref=f"r{n}")

    async with httpx.AsyncClient() as http:
        history = await http.get(
            f"{limited_server.http_url}/chat/history?type=clan",
            headers={"Authorization": f"Bearer {token(new_id(), clan_id=clan)}"},
        )
    assert [m["content"] for m in history.json()["data"]["ChatMessage"]] == [
        f"flood {n}" for n in reversed(range(BURST))
    ]


async def test_bad_frames_spend_the_same_bucket_so_a_flood_of_garbage_is_limited_too(
    limited_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    flooder = await Client.connect(limited_server, token(new_id()))
    for _ in range(BURST):
        await flooder.send({"event": "globalMessage", "data": {"content": "   "}})
        assert (await flooder.recv())["error"][0]["reason"] == "REQUIRED"
    await flooder.send({"event": "globalMessage", "data": {"content": "   "}})
    frame = await flooder.recv()
    assert frame == too_many("messages", retry_after(frame))


async def test_reactions_have_their_own_bucket(limited_server: ServerProcess, new_id: Callable[[], str]) -> None:
    clan = new_id()
    author = await Client.connect(limited_server, token(new_id(), clan_id=clan))
    message = await author.post("clan", "react to me")
    reactor = await Client.connect(limited_server, token(new_id(), name="R", clan_id=clan))
    for emoji in ["👍", "🔥", "😀", "🎉", "❤️"]:
        reacted = await reactor.react("clan", message["_id"], emoji)
        assert reacted["event"] == "newReaction"
    frame = await reactor.react("clan", message["_id"], "😢")
    assert frame == too_many("reactions", retry_after(frame))
    assert (await reactor.post("clan", "messages still flow"))["content"] == "messages still flow"


async def test_history_reads_over_the_rate_get_429_with_retry_after(
    limited_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    headers = {"Authorization": f"Bearer {token(new_id())}"}
    async with httpx.AsyncClient() as http:
        for _ in range(BURST):
            assert (await http.get(f"{limited_server.http_url}/chat/history?type=global", headers=headers)).is_success
        refused = await http.get(f"{limited_server.http_url}/chat/history?type=global", headers=headers)
    assert refused.status_code == 429
    body = refused.json()
    wait_ms = body["errors"][0]["additional"]["retry_after_ms"]
    assert body == {"errors": too_many("history reads", wait_ms)["error"], "statusCode": 429}
    assert refused.headers["retry-after"] == str(-(-wait_ms // 1000))


async def test_a_players_oldest_socket_is_closed_beyond_the_socket_limit(
    limited_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    clan, player = new_id(), new_id()
    first = await Client.connect(limited_server, token(player, clan_id=clan))
    second = await Client.connect(limited_server, token(player, clan_id=clan))
    third = await Client.connect(limited_server, token(player, clan_id=clan))
    await asyncio.wait_for(first.connection.wait_closed(), 5)
    assert (first.connection.close_code, first.connection.close_reason) == (
        1008,
        "too many connections for this player",
    )
    other = await Client.connect(limited_server, token(new_id(), clan_id=clan))
    await other.send({"event": "clanMessage", "data": {"content": "both devices see this"}})
    for client in (second, third, other):
        assert (await client.recv())["message"]["content"] == "both devices see this"


async def test_the_message_rate_is_one_bucket_across_replicas(tmp_path: Path, new_id: Callable[[], str]) -> None:
    env = suite_env(CHAT_MESSAGE_RATE=SLOW_REFILL, CHAT_MESSAGE_BURST=str(BURST))
    with Cluster(2, workdir=tmp_path / "c", env=env) as cluster:
        player = token(new_id())
        on_first, on_second = [await Client.open(replica.ws_url, player) for replica in cluster.replicas]
        for n in range(3):
            assert (await on_first.post("global", f"first {n}"))["content"] == f"first {n}"
            assert (await on_second.recv())["message"]["content"] == f"first {n}"
        for n in range(BURST - 3):
            assert (await on_second.post("global", f"second {n}"))["content"] == f"second {n}"
            assert (await on_first.recv())["message"]["content"] == f"second {n}"
        await on_second.send({"event": "globalMessage", "data": {"content": "one too many"}})
        frame = await on_second.recv()
        assert frame == too_many("messages", retry_after(frame))


async def test_a_client_that_never_answers_pings_is_dropped(
    server_factory: ServerFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory(CHAT_PING_INTERVAL_SECONDS="1", CHAT_PING_TIMEOUT_SECONDS="1")
    silent = await StuckClient.connect(server.port, token(new_id()))
    try:
        await silent.read_until_closed(timeout=10)  # reads (and so sees the pings) but never sends a pong
    finally:
        silent.close()
    answering = await Client.connect(server, token(new_id()))
    await asyncio.sleep(3)  # three ping intervals: a client that answers them stays
    assert (await answering.post("global", "still here"))["content"] == "still here"


async def test_a_worker_at_its_socket_cap_closes_new_sockets_with_1013(
    server_factory: ServerFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory(CHAT_MAX_SOCKETS="2")
    held = [await Client.connect(server, token(new_id())) for _ in range(2)]
    refused = await Client.connect(server, token(new_id()), ready=False)
    await asyncio.wait_for(refused.connection.wait_closed(), 5)
    closed = (refused.connection.close_code, refused.connection.close_reason)
    assert closed == (1013, "server overloaded; try again later")
    await held[0].close()
    await held[0].connection.wait_closed()
    frame: Any = None
    for _ in range(100):  # the worker notices the close a moment later: retry, no fixed sleep
        again = await Client.connect(server, token(new_id()), ready=False)
        try:
            frame = await again.recv()
            break
        except ConnectionClosed:
            assert again.connection.close_code == 1013
    assert frame == {"event": "ready", "data": True}


async def test_a_flood_of_unreadable_frames_is_limited_and_then_closed(
    limited_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    flooder = await Client.connect(limited_server, token(new_id()))
    honest = await Client.connect(limited_server, token(new_id()))
    for _ in range(BURST + 20):
        await flooder.send("{}")
    answers = [await flooder.recv() for _ in range(BURST + 20)]
    assert [a["error"][0]["reason"] for a in answers[:BURST]] == ["NOT_ALLOWED"] * BURST
    for answer in answers[BURST:]:
        assert answer == too_many("messages", retry_after(answer))
    await asyncio.wait_for(flooder.connection.wait_closed(), 5)
    assert (flooder.connection.close_code, flooder.connection.close_reason) == (1008, "too many refused frames")
    assert (await honest.post("global", "still heard"))["content"] == "still heard"


async def test_a_player_reconnecting_in_a_loop_is_refused_with_429(
    server_factory: ServerFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory(CHAT_CONNECT_RATE=SLOW_REFILL, CHAT_CONNECT_BURST="3")
    bearer = token(new_id())
    for _ in range(3):
        await (await Client.connect(server, bearer)).close()
    with pytest.raises(InvalidStatus) as refused:
        await Client.connect(server, bearer)
    assert refused.value.response.status_code == 429
    body = json.loads(refused.value.response.body or b"")
    assert body == too_many("connects", body["error"][0]["additional"]["retry_after_ms"])
    await Client.connect(server, token(new_id()))  # another player is not affected
