"""A player's own messages over three replicas: edits and deletions reach every socket of the room,
deletions leave history and reactions but come back on a resume, gap repair carries both, and reports
reach the moderators without a broadcast."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import ServerFactory
from tests.protocol.test_resume import RECOVERED, frames_until_ready, resume
from tests.replicas.test_replicas_shared_store import shared_store_env
from tests.support.game_client import GameClient, check_history
from tests.support.harness import Client, token
from tools.cluster import Cluster

SERVICE_TOKEN = "ws-moderation-suite-service-token"
GAME = "altzone-chat.game"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, mongo_standin_url: str) -> Iterator[Cluster]:
    env = shared_store_env(mongo_standin_url, CHAT_INTERNAL_TOKEN=SERVICE_TOKEN)
    with Cluster(3, workdir=tmp_path_factory.mktemp("ws-moderation"), env=env) as running:
        yield running


async def on(cluster: Cluster, replica: int, bearer: str) -> Client:
    return await Client.open(cluster.replicas[replica].ws_url, bearer)


async def room_of_three(cluster: Cluster, new_id: Callable[[], str]) -> tuple[str, Client, list[Client], str]:
    """A clan with its sender on replica 1 and a member on each other replica; returns the sender's token too."""
    clan = new_id()
    sender_token = token(new_id(), name="Sender", clan_id=clan)
    sender = await on(cluster, 1, sender_token)
    members = [await on(cluster, replica, token(new_id(), clan_id=clan)) for replica in (0, 2)]
    return clan, sender, members, sender_token


async def everyone_gets(clients: list[Client]) -> list[dict[str, Any]]:
    return [await client.recv() for client in clients]


async def clan_history(cluster: Cluster, replica: int, bearer: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=cluster.replicas[replica].url) as http:
        response = await http.get(
            "/chat/history", params={"type": "clan"}, headers={"Authorization": f"Bearer {bearer}"}
        )
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["data"]["ChatMessage"]
    return messages


def not_found(message_id: str, ref: str) -> dict[str, Any]:
    return {
        "error": [
            {
                "reason": "NOT_FOUND",
                "field": "_id",
                "value": message_id,
                "message": "Could not find any objects with specified id",
                "additional": None,
            }
        ],
        "ref": ref,
    }


# --- edits ---------------------------------------------------------------------------------------


async def test_a_sender_edits_its_message_and_every_socket_of_the_room_on_every_replica_gets_edited_message(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    clan, sender, members, sender_token = await room_of_three(cluster, new_id)
    posted = await sender.post("clan", "helo everyone", feeling="happy")
    await everyone_gets(members)

    await sender.send(
        {"event": "clanMessageEdit", "data": {"message_id": posted["_id"], "content": "  hello everyone  "}}
    )

    frames = await everyone_gets([sender, *members])
    edited = frames[0]["message"]
    assert frames == [{"chat": "clan", "event": "editedMessage", "message": edited}] * 3
    assert edited == {
        **posted,
        "content": "hello everyone",
        "updatedAt": edited["updatedAt"],
        "editedAt": edited["updatedAt"],
    }
    assert edited["updatedAt"] > posted["updatedAt"]
    assert (await clan_history(cluster, 2, sender_token))[0] == edited


async def test_another_players_edit_or_delete_is_not_found_and_changes_nothing(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    clan, sender, members, sender_token = await room_of_three(cluster, new_id)
    posted = await sender.post("clan", "mine alone")
    await everyone_gets(members)
    stranger = members[0]

    await stranger.send({"event": "clanMessageEdit", "ref": "e", "data": {"message_id": posted["_id"], "content": "x"}})
    assert await stranger.recv() == not_found(posted["_id"], "e")
    await stranger.send({"event": "clanMessageDelete", "ref": "d", "data": {"message_id": posted["_id"]}})
    assert await stranger.recv() == not_found(posted["_id"], "d")
    await sender.send({"event": "globalMessageDelete", "ref": "g", "data": {"message_id": posted["_id"]}})
    assert await sender.recv() == not_found(posted["_id"], "g")

    assert (await clan_history(cluster, 0, sender_token))[0] == posted
    await sender.send({"event": "clanMessage", "data": {"content": "and the room is quiet otherwise"}})
    for client in (sender, *members):
        assert (await client.recv())["message"]["content"] == "and the room is quiet otherwise"


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"content": "x"}, [("REQUIRED", "message_id")]),
        ({"message_id": "nope", "content": "x"}, [("VALIDATION", "message_id")]),
        ({"message_id": "a" * 24, "content": "   "}, [("REQUIRED", "content")]),
        ({"message_id": "a" * 24, "content": "x" * 257}, [("MORE_THAN_MAX", "content")]),
        ({"message_id": 5}, [("VALIDATION", "message_id"), ("REQUIRED", "content")]),
    ],
    ids=["no-id", "bad-id", "blank", "too-long", "both"],
)
async def test_an_edit_is_validated_like_a_message_with_one_error_frame(
    cluster: Cluster, new_id: Callable[[], str], data: dict[str, Any], errors: list[tuple[str, str]]
) -> None:
    client = await on(cluster, 0, token(new_id()))

    await client.send({"event": "globalMessageEdit", "data": data})

    reply = await client.recv()
    assert [(e["reason"], e["field"]) for e in reply["error"]] == errors


# --- deletions -----------------------------------------------------------------------------------


async def test_a_sender_deletes_its_message_everywhere_it_leaves_history_and_reactions_and_a_resume_replays_it(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    clan, sender, members, sender_token = await room_of_three(cluster, new_id)
    kept = await sender.post("clan", "keep me")
    doomed = await sender.post("clan", "delete me")
    for member in members:
        assert [(await member.recv())["message"]["_id"] for _ in range(2)] == [kept["_id"], doomed["_id"]]

    await sender.send({"event": "clanMessageDelete", "data": {"message_id": doomed["_id"]}})

    frames = await everyone_gets([sender, *members])
    tombstone = frames[0]["message"]
    assert frames == [{"chat": "clan", "event": "deletedMessage", "message": tombstone}] * 3
    assert tombstone == {
        "_id": doomed["_id"],
        "type": "clan",
        "clan_id": clan,
        "updatedAt": tombstone["deletedAt"],
        "deletedAt": tombstone["deletedAt"],
    }
    assert [m["_id"] for m in await clan_history(cluster, 0, sender_token)] == [kept["_id"]]
    await members[1].send(
        {"event": "clanMessageReaction", "ref": "r", "data": {"message_id": doomed["_id"], "emoji": "🔥"}}
    )
    assert await members[1].recv() == not_found(doomed["_id"], "r")
    resumed = await resume(cluster.replicas[0].ws_url, sender_token, kept["updatedAt"])
    assert await frames_until_ready(resumed) == ([frames[0]], RECOVERED)


async def test_a_resume_after_an_edit_replays_edited_message(cluster: Cluster, new_id: Callable[[], str]) -> None:
    clan, sender, members, sender_token = await room_of_three(cluster, new_id)
    posted = await sender.post("clan", "first draft")
    await sender.send({"event": "clanMessageEdit", "data": {"message_id": posted["_id"], "content": "final"}})
    edited = await sender.recv()

    resumed = await resume(cluster.replicas[2].ws_url, token(new_id(), clan_id=clan), posted["updatedAt"])

    assert await frames_until_ready(resumed) == ([edited], RECOVERED)


@pytest.mark.parametrize("action", ["edit", "delete"])
async def test_gap_repair_carries_edits_and_deletions_once(
    cluster: Cluster, new_id: Callable[[], str], action: str
) -> None:
    clan, sender, members, _ = await room_of_three(cluster, new_id)
    posted = await sender.post("clan", "before the gap")
    await everyone_gets(members)
    with redis.Redis.from_url(cluster.redis_url) as admin:
        admin.incr(f"chat:seq:clan:{clan}")  # as if a frame had been published and lost: the next one shows a gap

    if action == "edit":
        await sender.send({"event": "clanMessageEdit", "data": {"message_id": posted["_id"], "content": "after"}})
    else:
        await sender.send({"event": "clanMessageDelete", "data": {"message_id": posted["_id"]}})
    await sender.send({"event": "clanMessage", "data": {"content": "and live again"}})

    expected = "editedMessage" if action == "edit" else "deletedMessage"
    for client in (sender, *members):
        first, second = await client.recv(), await client.recv()
        assert (first["event"], first["message"]["_id"]) == (expected, posted["_id"])
        assert (second["event"], second["message"]["content"]) == ("newMessage", "and live again")


# --- reports -------------------------------------------------------------------------------------


async def test_a_report_reaches_the_moderators_on_every_replica_and_nothing_is_broadcast(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    clan, sender, members, _ = await room_of_three(cluster, new_id)
    posted = await sender.post("clan", "something rude")
    await everyone_gets(members)
    reporter = members[0]

    await reporter.send({"event": "clanMessageReport", "data": {"message_id": posted["_id"], "reason": "  insults  "}})
    await sender.send({"event": "clanMessage", "data": {"content": "next"}})

    for client in (sender, *members):
        assert (await client.recv())["message"]["content"] == "next"
    async with httpx.AsyncClient(base_url=cluster.replicas[2].url) as http:
        listed = await http.get(
            "/chat/moderation/reports", params={"limit": 50}, headers={"Authorization": f"Bearer {SERVICE_TOKEN}"}
        )
    report = next(r for r in listed.json()["reports"] if r["message_id"] == posted["_id"])
    assert report == {
        "message_id": posted["_id"],
        "chat": "clan",
        "clan_id": clan,
        "sender_id": posted["sender"]["_id"],
        "content": "something rude",
        "reporter_id": report["reporter_id"],
        "reason": "insults",
        "at": report["at"],
    }
    assert report["reporter_id"] != posted["sender"]["_id"]


async def test_a_report_of_another_clans_message_is_not_found_and_a_long_reason_is_refused(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    clan, sender, members, _ = await room_of_three(cluster, new_id)
    posted = await sender.post("clan", "our secret")
    await everyone_gets(members)
    outsider = await on(cluster, 0, token(new_id(), clan_id=new_id()))

    await outsider.send({"event": "clanMessageReport", "ref": "o", "data": {"message_id": posted["_id"]}})
    assert await outsider.recv() == not_found(posted["_id"], "o")
    await outsider.send({"event": "globalMessageReport", "ref": "g", "data": {"message_id": posted["_id"]}})
    assert await outsider.recv() == not_found(posted["_id"], "g")
    await members[0].send(
        {"event": "clanMessageReport", "ref": "l", "data": {"message_id": posted["_id"], "reason": "x" * 257}}
    )
    reply = await members[0].recv()
    assert [(e["reason"], e["field"]) for e in reply["error"]] == [("MORE_THAN_MAX", "reason")]


async def test_game_sockets_get_no_edit_or_delete_frames_and_see_the_change_in_history(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    sender_token = token(new_id(), clan_id=clan)
    sender = await on(cluster, 0, sender_token)
    game = await GameClient.open(cluster.replicas[1].ws_url, token(new_id(), clan_id=clan), subprotocol=GAME)
    one, two = await sender.post("clan", "one"), await sender.post("clan", "two")
    assert [(await game.recv())["message"]["_id"] for _ in range(2)] == [one["_id"], two["_id"]]

    await sender.send({"event": "clanMessageEdit", "data": {"message_id": one["_id"], "content": "one, edited"}})
    await sender.send({"event": "clanMessageDelete", "data": {"message_id": two["_id"]}})
    await sender.send({"event": "clanMessage", "data": {"content": "three"}})

    assert [(await sender.recv())["event"] for _ in range(3)] == ["editedMessage", "deletedMessage", "newMessage"]
    frame = await game.recv()
    assert (frame["event"], frame["message"]["content"]) == ("newMessage", "three")
    assert game.skipped == []
    async with httpx.AsyncClient(base_url=cluster.replicas[2].url) as http:
        page = await http.get(
            "/chat/history",
            params={"type": "clan", "dialect": "game"},
            headers={"Authorization": f"Bearer {sender_token}"},
        )
    assert [m["content"] for m in check_history(page.json())] == ["three", "one, edited"]


async def test_reports_are_limited_in_a_bucket_of_their_own(
    server_factory: ServerFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory(CHAT_REACTION_RATE="0.001", CHAT_REACTION_BURST="2")
    client = await Client.connect(server, token(new_id()))
    posted = await client.post("global", "report me")

    for n in range(3):
        await client.send({"event": "globalMessageReport", "ref": f"r{n}", "data": {"message_id": posted["_id"]}})
    await client.send({"event": "globalMessageReaction", "data": {"message_id": posted["_id"], "emoji": "👍"}})
    replies = [await client.recv(), await client.recv()]

    limited = replies[0]
    assert (limited["ref"], limited["error"][0]["reason"]) == ("r2", "TOO_MANY_REQUESTS")
    assert limited["error"][0]["message"] == "Too many reports; try again in a moment"
    assert replies[1]["event"] == "newReaction"
