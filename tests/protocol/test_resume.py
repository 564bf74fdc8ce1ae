"""A client that drops off and reconnects with ``?since=`` (or ``X-Chat-Since``) gets what it missed.

One server here; across replicas, with the store shared, see ``test_replicas_shared_store.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from chatserver.client import ChatClient
from tests.conftest import ServerFactory
from tests.support.harness import Client, ServerProcess, token

RECOVERED = {"event": "ready", "data": True, "recovered": True}
NOT_RECOVERED = {"event": "ready", "data": True, "recovered": False}


async def resume(ws_url: str, bearer: str, since: str, *, via: str = "query") -> Client:
    """Reconnect with ``since``; the frames up to ``ready`` are left for the test to read."""
    if via == "query":
        connection = await websockets.connect(f"{ws_url}?token={bearer}&since={since}", max_queue=None)
    else:
        headers = {"Authorization": f"Bearer {bearer}", "X-Chat-Since": since}
        connection = await websockets.connect(ws_url, additional_headers=headers, max_queue=None)
    return Client(connection)


async def frames_until_ready(client: Client) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    frames = []
    while (frame := await client.recv()).get("event") != "ready":
        frames.append(frame)
    return frames, frame


def summary(frame: dict[str, Any]) -> tuple[str, str, str, list[str]]:
    """What a change is: event, chat, content and the emojis it carries."""
    message = frame["message"]
    return frame["event"], frame["chat"], message["content"], [r["emoji"] for r in message["reactions"]]


@pytest.mark.parametrize("via", ["query", "header"])
async def test_a_returning_client_gets_exactly_the_messages_and_reactions_it_missed_in_order(
    server: ServerProcess, new_id: Callable[[], str], via: str
) -> None:
    clan, player = new_id(), new_id()
    mine = token(player, clan_id=clan)
    away = await Client.connect(server, mine)
    friend = await Client.connect(server, token(new_id(), name="Friend", clan_id=clan))
    older = [await friend.post("clan", f"old {n}") for n in range(5)]
    for _ in older:
        last_seen = (await away.recv())["message"]["updatedAt"]
    await away.close()

    for n in range(20):
        await friend.post("clan" if n % 2 else "global", f"missed {n}")
    for n, message in enumerate(older):
        assert (await friend.react("clan", message["_id"], ["👍", "🔥", "😀", "🎉", "❤️"][n]))["event"] == "newReaction"

    back = await resume(server.ws_url, mine, last_seen, via=via)
    replayed, ready = await frames_until_ready(back)
    assert ready == RECOVERED
    no_emoji: list[str] = []
    global_missed = [("newMessage", "global", f"missed {n}", no_emoji) for n in range(0, 20, 2)]
    clan_missed = [("newMessage", "clan", f"missed {n}", no_emoji) for n in range(1, 20, 2)]
    reacted = [("newReaction", "clan", f"old {n}", [e]) for n, e in enumerate(["👍", "🔥", "😀", "🎉", "❤️"])]
    assert [summary(frame) for frame in replayed] == global_missed + clan_missed + reacted, "each room in order"
    assert all(frame["message"]["updatedAt"] > last_seen for frame in replayed)

    live = await friend.post("clan", "live again")
    assert (await back.recv())["message"] == live


async def test_a_resume_with_nothing_missed_is_just_ready(server: ServerProcess, new_id: Callable[[], str]) -> None:
    player = token(new_id())
    client = await Client.connect(server, player)
    seen = await client.post("global", "the last thing I saw")
    await client.close()
    back = await resume(server.ws_url, player, seen["updatedAt"])
    assert await frames_until_ready(back) == ([], RECOVERED)


async def test_more_missed_than_the_limit_replays_the_newest_and_says_not_recovered(
    server_factory: ServerFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory(CHAT_RESUME_LIMIT="5")
    clan, player = new_id(), new_id()
    away = await Client.connect(server, token(player, clan_id=clan))
    last_seen = (await away.post("clan", "seen"))["updatedAt"]
    await away.close()
    friend = await Client.connect(server, token(new_id(), clan_id=clan))
    for n in range(8):
        await friend.post("clan", f"missed {n}")

    back = await resume(server.ws_url, token(player, clan_id=clan), last_seen)
    replayed, ready = await frames_until_ready(back)
    assert ready == NOT_RECOVERED
    assert [frame["message"]["content"] for frame in replayed] == [f"missed {n}" for n in range(3, 8)]


async def test_a_resume_during_a_steady_stream_loses_and_repeats_nothing(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    """The reconnect lands while messages keep coming: replay and live stream must join seamlessly."""
    clan, player = new_id(), new_id()
    mine = token(player, clan_id=clan)
    sender = await Client.connect(server, token(new_id(), clan_id=clan))
    reader = await Client.connect(server, mine)
    total = 120

    async def stream() -> None:
        for n in range(total):
            await sender.send({"event": "clanMessage", "data": {"content": f"s{n}"}})
            await asyncio.sleep(0.002)

    streaming = asyncio.create_task(stream())
    received: list[dict[str, Any]] = []
    while len(received) < 30:
        message = (await reader.recv())["message"]
        received.append(message)
    await reader.close()
    back = await resume(server.ws_url, mine, received[-1]["updatedAt"])
    replayed, ready = await frames_until_ready(back)
    assert ready == RECOVERED
    received += [frame["message"] for frame in replayed]
    await streaming
    while len(received) < total:
        received.append((await back.recv())["message"])
    assert [m["content"] for m in received] == [f"s{n}" for n in range(total)]


@pytest.mark.parametrize("since", ["yesterday", "2025-13-45T00:00:00Z", "1732550400", "9999-12-31T23:59:59-00:01"])
async def test_an_unreadable_since_is_refused_with_400(
    server: ServerProcess, new_id: Callable[[], str], since: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(f"{server.ws_url}?token={token(new_id())}&since={since}")
    response = refused.value.response
    assert response.status_code == 400
    assert json.loads(response.body) == {
        "error": [
            {
                "reason": "VALIDATION",
                "field": "since",
                "value": since,
                "message": "since must be an ISO-8601 time such as 2025-06-23T13:03:15.778Z",
                "additional": None,
            }
        ]
    }


async def test_the_reference_client_gets_a_fresh_token_after_4401_and_resumes_without_a_gap(
    embedded_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    player, minted = new_id(), []

    def fresh_token() -> str:  # what a game client does: sign in again (here, tokens live 2 s)
        minted.append(token(player, exp_in=2))
        return minted[-1]

    reader = ChatClient([embedded_server.ws_url], fresh_token)
    stop = asyncio.Event()
    running = asyncio.create_task(reader.run(stop=stop))
    sender_id = new_id()
    sender = await Client.connect(embedded_server, token(sender_id))
    for n in range(30):  # about 3 s of traffic: the reader's first token expires in the middle
        await sender.post("global", f"t{n}")
        await asyncio.sleep(0.1)
    for _ in range(200):
        if any(m["content"] == "t29" for m in reader.messages.values()):
            break
        await asyncio.sleep(0.02)
    stop.set()
    await running
    # the resume overlap (2 s) may also bring back what an earlier test posted to this shared server
    ours = [m for m in reader.messages.values() if m["sender"]["_id"] == sender_id]
    assert [m["content"] for m in sorted(ours, key=lambda m: m["createdAt"])] == [f"t{n}" for n in range(30)]
    assert reader.connects >= 2 and len(minted) >= 2 and reader.repeats == 0


async def test_each_room_a_resume_replays_is_charged_to_the_players_history_bucket(
    server_factory: ServerFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory(CHAT_HISTORY_RATE="0.001", CHAT_HISTORY_BURST="3")
    clan, player = new_id(), new_id()
    bearer = token(player, clan_id=clan)
    poster = await Client.connect(server, token(new_id(), clan_id=clan))
    await poster.post("global", "hello everyone")
    await poster.post("clan", "while you were away")
    contents = {"global": "hello everyone", "clan": "while you were away"}

    replays = []
    for _ in range(3):  # global and clan cost two of the three tokens; then one room; then none
        client = await resume(server.ws_url, bearer, "1970-01-01T00:00:00Z")
        frames, ready = await frames_until_ready(client)
        replays.append(([(f["chat"], f["message"]["content"]) for f in frames], ready))
    assert replays == [
        ([("global", contents["global"]), ("clan", contents["clan"])], RECOVERED),
        ([("global", contents["global"])], NOT_RECOVERED),
        ([], NOT_RECOVERED),
    ]

    async with httpx.AsyncClient() as http:
        refused = await http.get(
            f"{server.http_url}/chat/history", params={"type": "clan"}, headers={"Authorization": f"Bearer {bearer}"}
        )
    assert refused.status_code == 429 and refused.json()["errors"][0]["reason"] == "TOO_MANY_REQUESTS"
    await poster.post("clan", "live still arrives")
    assert (await client.recv())["message"]["content"] == "live still arrives"
