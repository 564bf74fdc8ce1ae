"""Replicas sharing one store: nothing lost or repeated (resuming on another replica, a killed
subscriber connection, a skipped sequence number, a rolling restart under a steady stream), clan
moves read from the game database, and one subscriber connection per replica.

The replicas share one store (MongoStore over the wire-protocol stand-in, ``tests/support/mongo_standin.py``),
as production replicas share MongoDB, and one real ``redis-server``; the module's shared replicas
run once on it and once on a local three-master Redis Cluster.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest
import redis
from bson import ObjectId

from chatserver.client import ChatClient
from tests.protocol.test_metrics import scrape
from tests.protocol.test_resume import RECOVERED, frames_until_ready, resume, summary
from tests.support.harness import Client, suite_env, token
from tests.support.redis_topology import TOPOLOGIES, incr_room_seq, on_every_master, replicas_on, room_subscribers
from tools.cluster import Cluster

EMOJIS = ["👍", "🔥", "😀", "🎉", "❤️"]


def shared_store_env(mongo_standin_url: str, **extra: str) -> dict[str, str]:
    """Replicas on one store, a database of their own; players from the tokens' claims."""
    return suite_env(
        MONGODB_URL=mongo_standin_url,
        MONGODB_DB=f"chat_test_{secrets.token_hex(4)}",
        CHAT_PLAYERS_FROM_DB="false",
        **extra,
    )


@pytest.fixture(scope="module", params=TOPOLOGIES)
def topology(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, mongo_standin_url: str, topology: str) -> Iterator[Cluster]:
    env = shared_store_env(mongo_standin_url)
    with replicas_on(topology, tmp_path_factory.mktemp("shared-store"), env) as running:
        yield running


async def on(cluster: Cluster, replica: int, bearer: str) -> Client:
    return await Client.open(cluster.replicas[replica].ws_url, bearer)


async def history(base_url: str, bearer: str, chat: str) -> list[dict[str, Any]]:
    """A whole room from the store, oldest first, walked with the ``before`` cursor."""
    newest_first: list[dict[str, Any]] = []
    params = {"type": chat, "limit": "50"}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {bearer}"}) as http:
        while page := (await http.get(f"{base_url}/chat/history", params=params)).json()["data"]["ChatMessage"]:
            newest_first += page
            params["before"] = page[-1]["_id"]
    return newest_first[::-1]


async def test_a_client_resuming_on_another_replica_gets_what_happened_on_the_others_once_in_order(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    clan, player = new_id(), new_id()
    mine = token(player, clan_id=clan)
    away = await on(cluster, 0, mine)
    poster = await on(cluster, 1, token(new_id(), name="Poster", clan_id=clan))
    older = [await poster.post("clan", f"old {n}") for n in range(5)]
    reactor = await on(cluster, 2, token(new_id(), name="Reactor", clan_id=clan))
    for _ in older:
        last_seen = (await away.recv())["message"]["updatedAt"]
    await away.close()

    for message, emoji in zip(older, EMOJIS, strict=True):  # on replica 2
        assert (await reactor.react("clan", message["_id"], emoji))["event"] == "newReaction"
        assert (await poster.recv())["event"] == "newReaction"
    for n in range(20):  # on replica 1
        await poster.post("clan" if n % 2 else "global", f"missed {n}")

    connection = await resume(cluster.replicas[2].ws_url, mine, last_seen)
    replayed, ready = await frames_until_ready(connection)
    assert ready == RECOVERED
    assert [summary(frame) for frame in replayed] == [
        *[("newMessage", "global", f"missed {n}", []) for n in range(0, 20, 2)],
        *[("newReaction", "clan", f"old {n}", [emoji]) for n, emoji in enumerate(EMOJIS)],
        *[("newMessage", "clan", f"missed {n}", []) for n in range(1, 20, 2)],
    ]
    live = await poster.post("clan", "live on replica 1")
    assert (await connection.recv())["message"] == live


async def readers_get_exactly(readers: list[Client], contents: list[str]) -> None:
    for reader in readers:
        got = [(await reader.recv(timeout=15))["message"]["content"] for _ in contents]
        assert got == contents


async def test_a_killed_subscriber_connection_loses_nothing_while_messages_flow(
    cluster: Cluster, topology: str, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    readers = [await on(cluster, r, token(new_id(), clan_id=clan)) for r in (0, 1, 2)]
    sender = await on(cluster, 0, token(new_id(), clan_id=clan))
    contents = [f"flow {n}" for n in range(80)]
    for n, content in enumerate(contents):
        await sender.send({"event": "clanMessage", "data": {"content": content}})
        if n == 30:  # every replica's subscriber connections, mid-stream
            assert on_every_master(cluster, topology, lambda admin: int(admin.client_kill_filter(_type="pubsub"))) >= 3
        await asyncio.sleep(0.005)
    await readers_get_exactly([*readers, sender], contents)
    await sender.send({"event": "clanMessage", "data": {"content": "and nothing more"}})
    await readers_get_exactly(readers, ["and nothing more"])
    for replica in cluster.replicas:
        assert (await scrape(replica.url))[("chat_catch_ups_total", (("outcome", "done"),))] >= 1


async def test_a_skipped_sequence_number_makes_the_room_catch_up_without_repeats(
    cluster: Cluster, topology: str, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    readers = [await on(cluster, r, token(new_id(), clan_id=clan)) for r in (0, 1, 2)]
    sender = await on(cluster, 1, token(new_id(), clan_id=clan))
    await sender.send({"event": "clanMessage", "data": {"content": "before the gap"}})
    await readers_get_exactly([*readers, sender], ["before the gap"])
    incr_room_seq(cluster, topology, f"clan:{clan}")  # as if a frame had been published and lost
    for content in ("after the gap", "and live again"):
        await sender.send({"event": "clanMessage", "data": {"content": content}})
    await readers_get_exactly([*readers, sender], ["after the gap", "and live again"])


async def test_the_reference_client_survives_a_rolling_restart_with_the_stores_exact_message_list(
    tmp_path: Path, mongo_standin_url: str, new_id: Callable[[], str]
) -> None:
    env = shared_store_env(mongo_standin_url, CHAT_DRAIN_SECONDS="5")
    with Cluster(3, workdir=tmp_path / "rolling", env=env) as cluster:
        reading, sending = token(new_id()), token(new_id())
        reader = ChatClient([cluster.ws_url], lambda: reading)
        sender = ChatClient([cluster.ws_url], lambda: sending)
        stop = asyncio.Event()
        running = [asyncio.create_task(reader.run(stop=stop)), asyncio.create_task(sender.run(stop=stop))]
        restarted = asyncio.Event()

        async def stream() -> int:
            sent = 0
            while not restarted.is_set() or sent < 20:
                if await sender.send({"event": "globalMessage", "data": {"content": f"steady {sent}"}}):
                    sent += 1
                await asyncio.sleep(0.02)
            while not await sender.send({"event": "globalMessage", "data": {"content": "the end"}}):
                await asyncio.sleep(0.02)
            return sent

        streaming = asyncio.create_task(stream())
        for index in range(3):
            await asyncio.sleep(0.5)
            await asyncio.to_thread(cluster.stop_replica, index)
            await asyncio.to_thread(cluster.start_replica, index)
        restarted.set()
        sent = await asyncio.wait_for(streaming, 60)
        for _ in range(300):
            if any(m["content"] == "the end" for m in reader.messages.values()):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*running)

        stored = await history(cluster.public_url, reading, "global")
        shown = sorted(reader.messages.values(), key=lambda m: (m["createdAt"], m["_id"]))
        assert [m["_id"] for m in shown] == [m["_id"] for m in stored]
        assert [m["content"] for m in shown][-1] == "the end" and len(shown) > 20 and sent >= 20
        assert reader.repeats == 0, "the server sent a frame twice"
        assert reader.connects >= 2 and sender.connects >= 2


async def test_with_the_game_database_a_clan_change_there_moves_the_players_sockets_on_every_replica(
    tmp_path: Path, mongo_standin_url: str, new_id: Callable[[], str]
) -> None:
    """The game writes the player's new clan, then publishes; every replica re-reads it and moves the sockets."""
    database = f"chat_test_{secrets.token_hex(4)}"
    player, old_clan, new_clan = ObjectId(), ObjectId(), ObjectId()
    with pymongo.MongoClient[dict[str, Any]](mongo_standin_url) as client:
        client[database]["Player"].insert_one({"_id": player, "name": "Mover", "clan_id": old_clan})
    env = suite_env(MONGODB_URL=mongo_standin_url, MONGODB_DB=database, CHAT_PLAYERS_FROM_DB="true")
    with Cluster(2, workdir=tmp_path / "db", env=env) as db_cluster:
        sockets = [await Client.open(replica.ws_url, token(str(player))) for replica in db_cluster.replicas]
        with pymongo.MongoClient[dict[str, Any]](mongo_standin_url) as client:
            client[database]["Player"].update_one({"_id": player}, {"$set": {"clan_id": new_clan}})
        with redis.Redis.from_url(db_cluster.redis_url) as admin:
            stale = {"player_id": str(player), "action": "leave", "clan_id": str(new_clan)}
            admin.publish("chat:membership", json.dumps(stale))  # out of date: the database says new_clan
            admin.publish("chat:membership", json.dumps({**stale, "action": "join"}))
        for socket in sockets:
            assert await socket.recv() == {"event": "clanLeft", "data": {"clan_id": str(old_clan)}}
            assert await socket.recv() == {"event": "clanJoined", "data": {"clan_id": str(new_clan)}}
        posted = await sockets[0].post("clan", "in the new clan")
        assert posted["clan_id"] == str(new_clan)
        assert (await sockets[1].recv())["message"] == posted


async def test_each_replica_holds_one_subscriber_connection_and_a_clan_channel_only_while_it_has_members(
    cluster: Cluster, topology: str, new_id: Callable[[], str]
) -> None:
    """One Redis: one subscriber connection per replica. A cluster: at most one per replica and master."""
    clan = new_id()

    def subscriber_connections() -> int:
        return on_every_master(cluster, topology, lambda admin: len(admin.client_list(_type="pubsub")))

    if topology == "one-redis":
        assert subscriber_connections() == 3, "one subscriber connection per replica"
    else:
        assert 3 <= subscriber_connections() <= 3 * 3, "at most one subscriber connection per replica and master"
    first = await on(cluster, 0, token(new_id(), clan_id=clan))
    second = await on(cluster, 0, token(new_id(), clan_id=clan))
    assert room_subscribers(cluster, topology, f"clan:{clan}") == 1, "one subscription for both local sockets"
    await first.close()
    await second.post("clan", "still subscribed")
    assert room_subscribers(cluster, topology, f"clan:{clan}") == 1
    await second.close()
    for _ in range(200):  # the replica unsubscribes once it notices the last close: poll, no fixed sleep
        if room_subscribers(cluster, topology, f"clan:{clan}") == 0:
            break
        await asyncio.sleep(0.01)
    assert room_subscribers(cluster, topology, f"clan:{clan}") == 0
    if topology == "one-redis":
        assert subscriber_connections() == 3
