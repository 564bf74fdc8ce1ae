"""Many replicas on one Redis, or on a Redis Cluster: every client sees every message of its rooms,
whichever replica it is on.

The shared suite runs twice, on one ``redis-server`` and on a local three-master Redis Cluster
(``tools/redis_cluster.py``); outages of the one Redis run on it alone. Clients connect to replicas
directly (not through nginx) so each test knows where every socket is.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from redis.cluster import RedisCluster

from tests.support.harness import ROOT, Client, post_membership, suite_env, token
from tests.support.redis_topology import TOPOLOGIES, names_for, publish_to_room_channel, replicas_on
from tools.cluster import Cluster

SERVICE_TOKEN = "replica-suite-service-token"
READY_TIMEOUT = 30.0


@pytest.fixture(scope="module", params=TOPOLOGIES)
def topology(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, topology: str) -> Iterator[Cluster]:
    """Three replicas, on their own ``redis-server`` or on a three-master Redis Cluster."""
    with replicas_on(
        topology, tmp_path_factory.mktemp("replicas"), suite_env(CHAT_INTERNAL_TOKEN=SERVICE_TOKEN)
    ) as running:
        yield running


async def on(cluster: Cluster, replica: int, bearer: str) -> Client:
    """A client connected straight to one replica."""
    return await Client.open(cluster.replicas[replica].ws_url, bearer)


async def wait_ready(url: str, expected: int) -> None:
    """Poll ``/readyz`` until it answers ``expected`` (the replica's own view of its backends)."""
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            try:
                if (await http.get(f"{url}/readyz")).status_code == expected:
                    return
            except httpx.HTTPError:
                pass
            assert asyncio.get_running_loop().time() < deadline, f"{url}/readyz never answered {expected}"
            await asyncio.sleep(0.1)


async def assert_next_content(client: Client, content: str) -> None:
    frame = await client.recv()
    assert frame.get("message", {}).get("content") == content, frame


async def test_message_on_one_replica_reaches_the_others_once_each_in_send_order(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    sender = await on(cluster, 0, token(new_id(), clan_id=clan))
    readers = [await on(cluster, r, token(new_id(), clan_id=clan)) for r in (1, 2)]
    for n in range(20):
        await sender.send({"event": "clanMessage", "data": {"content": f"m{n}"}})
    await sender.send({"event": "clanMessage", "data": {"content": "end"}})
    for client in [sender, *readers]:
        received = [(await client.recv())["message"]["content"] for _ in range(21)]
        assert received == [f"m{n}" for n in range(20)] + ["end"]
    await readers[0].send({"event": "globalMessage", "data": {"content": "after"}})
    for client in readers:
        await assert_next_content(client, "after")


async def test_global_message_reaches_players_of_every_clan_on_every_replica(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    clients = [await on(cluster, r, token(new_id(), clan_id=new_id())) for r in (0, 1, 2, 0, 1, 2)]
    await clients[4].send({"event": "globalMessage", "data": {"content": "hello everyone"}})
    for client in clients:
        await assert_next_content(client, "hello everyone")


async def test_clan_messages_never_cross_to_another_clan_on_another_replica(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    clan_a, clan_b = new_id(), new_id()
    a0 = await on(cluster, 0, token(new_id(), clan_id=clan_a))
    a2 = await on(cluster, 2, token(new_id(), clan_id=clan_a))
    b1 = await on(cluster, 1, token(new_id(), clan_id=clan_b))
    b2 = await on(cluster, 2, token(new_id(), clan_id=clan_b))
    await a0.post("clan", "A secret")
    await assert_next_content(a2, "A secret")
    await a0.send({"event": "globalMessage", "data": {"content": "sentinel"}})
    for client in (b1, b2):
        await assert_next_content(client, "sentinel")


def clans_on_every_shard(cluster: Cluster, topology: str, new_id: Callable[[], str]) -> list[str]:
    """One clan id per master serving room channels (one for a single Redis)."""
    if topology == "one-redis":
        return [new_id()]
    names = names_for(topology)
    by_master: dict[str, str] = {}
    with RedisCluster.from_url(cluster.redis_url) as client:
        masters = {node.name for node in client.get_primaries()}
        while len(by_master) < len(masters):
            clan = new_id()
            node = client.get_node_from_key(names.room_channel(f"clan:{clan}"))
            by_master.setdefault(node.name, clan)
    return list(by_master.values())


async def test_clans_on_every_shard_reach_their_members_on_every_replica(
    cluster: Cluster, topology: str, new_id: Callable[[], str]
) -> None:
    for clan in clans_on_every_shard(cluster, topology, new_id):
        members = [await on(cluster, r, token(new_id(), clan_id=clan)) for r in (0, 1, 2)]
        for sender in members:
            content = f"to {clan} from replica {members.index(sender)}"
            await sender.send({"event": "clanMessage", "data": {"content": content}})
            for member in members:
                await assert_next_content(member, content)


async def test_a_malformed_publish_on_a_room_channel_does_not_stop_delivery(
    cluster: Cluster, topology: str, new_id: Callable[[], str]
) -> None:
    """A foreign publisher writing garbage to a room channel: logged and dropped, delivery goes on."""
    clients = [await on(cluster, r, token(new_id())) for r in (0, 1, 2)]
    assert publish_to_room_channel(cluster, topology, "global", "not a chat frame") == 3
    await clients[0].send({"event": "globalMessage", "data": {"content": "after the garbage"}})
    for receiver in clients:
        await assert_next_content(receiver, "after the garbage")
    for replica in cluster.replicas:
        await wait_ready(replica.url, 200)


def publish_on_redis(cluster: Cluster, player: str, action: str, clan: str) -> None:
    """The game backend's way: a JSON message straight on the membership channel."""
    client = redis.Redis.from_url(cluster.redis_url)
    try:
        client.publish("chat:membership", f'{{"player_id": "{player}", "action": "{action}", "clan_id": "{clan}"}}')
    finally:
        client.close()


def post_to_replica(cluster: Cluster, player: str, action: str, clan: str) -> None:
    post_membership(cluster.replicas[0].url, SERVICE_TOKEN, player, action, clan)


def run_cli(cluster: Cluster, player: str, action: str, clan: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CHAT_"))}
    result = subprocess.run(
        [sys.executable, "-m", "chatserver", "membership", action, "--player-id", player, "--clan-id", clan],
        env={**env, "REDIS_URL": cluster.redis_url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


ENTRY_POINTS = {"redis-channel": publish_on_redis, "internal-endpoint": post_to_replica, "cli": run_cli}


@pytest.mark.parametrize("entry_point", list(ENTRY_POINTS))
async def test_leave_and_join_move_the_players_sockets_on_every_replica(
    cluster: Cluster, new_id: Callable[[], str], entry_point: str
) -> None:
    change = ENTRY_POINTS[entry_point]
    player, old_clan, new_clan = new_id(), new_id(), new_id()
    sockets = [await on(cluster, r, token(player, clan_id=old_clan)) for r in (1, 2)]
    old_mate = await on(cluster, 0, token(new_id(), clan_id=old_clan))
    new_mate = await on(cluster, 1, token(new_id(), clan_id=new_clan))

    await asyncio.to_thread(change, cluster, player, "leave", old_clan)
    for socket in sockets:
        assert await socket.recv() == {"event": "clanLeft", "data": {"clan_id": old_clan}}
    await old_mate.post("clan", "you are gone")
    await old_mate.send({"event": "globalMessage", "data": {"content": "after leave"}})
    for socket in [*sockets, new_mate]:
        await assert_next_content(socket, "after leave")
    await sockets[0].send({"event": "clanMessage", "data": {"content": "can I?"}})
    assert (await sockets[0].recv())["error"][0]["reason"] == "NOT_ALLOWED"

    await asyncio.to_thread(change, cluster, player, "join", new_clan)
    for socket in sockets:
        assert await socket.recv() == {"event": "clanJoined", "data": {"clan_id": new_clan}}
    hello = await new_mate.post("clan", "welcome aboard")
    for socket in sockets:
        assert (await socket.recv())["message"] == hello


async def test_killing_one_replica_leaves_the_others_serving(tmp_path: Path, new_id: Callable[[], str]) -> None:
    with Cluster(3, workdir=tmp_path / "c", env=suite_env()) as cluster:
        clan = new_id()
        doomed = await on(cluster, 0, token(new_id(), clan_id=clan))
        survivors = [await on(cluster, r, token(new_id(), clan_id=clan)) for r in (1, 2)]
        cluster.kill_replica(0)
        await doomed.connection.wait_closed()
        await survivors[0].post("clan", "still here")
        await assert_next_content(survivors[1], "still here")
        newcomer = await on(cluster, 2, token(new_id(), clan_id=clan))
        await survivors[1].post("clan", "welcome")
        await assert_next_content(newcomer, "welcome")


async def test_redis_outage_gives_not_available_and_delivery_resumes_without_restarts(
    tmp_path: Path, mongo_standin_url: str, new_id: Callable[[], str]
) -> None:
    """The message stored during the outage reaches both replicas live after it, from their catch-up
    (on one shared store, as in production), before anything sent later."""
    store = {"MONGODB_URL": mongo_standin_url, "MONGODB_DB": f"chat_test_{new_id()}", "CHAT_PLAYERS_FROM_DB": "false"}
    with Cluster(2, workdir=tmp_path / "c", env=suite_env(**store)) as cluster:
        clan = new_id()
        sender = await on(cluster, 0, token(new_id(), clan_id=clan))
        reader = await on(cluster, 1, token(new_id(), clan_id=clan))
        pids = [replica.pid for replica in cluster.replicas]

        cluster.stop_redis()
        for replica in cluster.replicas:
            await wait_ready(replica.url, 503)
        await sender.send({"event": "clanMessage", "data": {"content": "into the void"}})
        error = (await sender.recv())["error"][0]
        assert (error["reason"], error["field"]) == ("NOT_AVAILABLE", None)
        assert (
            error["message"] == "Live delivery is not available right now; the change was stored and shows in history"
        )
        stored_id = error["additional"]["message_id"]

        cluster.start_redis()
        for replica in cluster.replicas:
            await wait_ready(replica.url, 200)
        assert [replica.pid for replica in cluster.replicas] == pids, "a replica was restarted"
        for client in (sender, reader):
            await assert_next_content(client, "into the void")
        await sender.post("clan", "back again")
        await assert_next_content(reader, "back again")
        history = httpx.get(
            f"{cluster.replicas[0].url}/chat/history",
            params={"type": "clan"},
            headers={"Authorization": f"Bearer {token(new_id(), clan_id=clan)}"},
            timeout=5,
        ).json()
        assert [m["_id"] for m in history["data"]["ChatMessage"]][1] == stored_id


async def test_after_a_redis_restart_the_first_message_from_every_replica_reaches_every_replica(
    tmp_path: Path, new_id: Callable[[], str]
) -> None:
    """Pooled connections the old Redis closed must not cost the next publish (or rate-limit check)."""
    with Cluster(3, workdir=tmp_path / "c", env=suite_env()) as cluster:
        clan = new_id()
        clients = [await on(cluster, r, token(new_id(), clan_id=clan)) for r in (0, 1, 2)]

        async def everyone_gets_one_message_from_each_replica(label: str) -> None:
            for sender, content in zip(clients, [f"{label} from replica {r}" for r in (0, 1, 2)], strict=True):
                await sender.send({"event": "clanMessage", "data": {"content": content}})
                for client in clients:
                    await assert_next_content(client, content)

        await everyone_gets_one_message_from_each_replica("before")
        cluster.stop_redis()
        cluster.start_redis()
        await every_replica_subscribed_again(cluster, f"chat:room:clan:{clan}")
        await everyone_gets_one_message_from_each_replica("after")


async def every_replica_subscribed_again(cluster: Cluster, channel: str) -> None:
    """Wait, as seen from Redis, until each replica's subscriber is back on ``channel``.

    Not through ``/readyz``: its ping would take (and so repair) the one stale connection in the pool.
    """
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT
    with redis.Redis.from_url(cluster.redis_url) as admin:
        while admin.pubsub_numsub(channel) != [(channel.encode(), len(cluster.replicas))]:
            assert asyncio.get_running_loop().time() < deadline, f"the replicas never subscribed to {channel} again"
            await asyncio.sleep(0.05)


async def test_a_message_redis_refused_reaches_every_replica_live_once_redis_takes_publishes_again(
    tmp_path: Path, new_id: Callable[[], str]
) -> None:
    """Redis out of memory refuses the numbered publish while every subscriber stays connected: no
    catch-up would ever notice, so the replica publishes the stored message again, and once only."""
    with Cluster(3, workdir=tmp_path / "c", env=suite_env()) as cluster:
        clan = new_id()
        clients = [await on(cluster, r, token(new_id(), clan_id=clan)) for r in (0, 1, 2)]
        with redis.Redis.from_url(cluster.redis_url) as admin:
            admin.config_set("maxmemory", "1")
            await clients[0].send({"event": "clanMessage", "data": {"content": "refused at first"}})
            error = (await clients[0].recv())["error"][0]
            assert error["reason"] == "NOT_AVAILABLE"
            admin.config_set("maxmemory", "0")
        for client in clients:
            await assert_next_content(client, "refused at first")
        await clients[1].send({"event": "clanMessage", "data": {"content": "and the next one"}})
        for client in clients:
            await assert_next_content(client, "and the next one")


async def test_after_a_redis_restart_the_rate_limit_holds_from_the_first_message(
    tmp_path: Path, new_id: Callable[[], str]
) -> None:
    """The limiter's pooled connection is stale too: its first take must not fail open."""
    limits = {"CHAT_MESSAGE_RATE": "0.01", "CHAT_MESSAGE_BURST": "1"}
    with Cluster(1, workdir=tmp_path / "c", env=suite_env(**limits)) as cluster:
        clan = new_id()
        sender = await on(cluster, 0, token(new_id(), clan_id=clan))
        await sender.post("clan", "before the restart")
        assert await refused(sender, "too soon") == "TOO_MANY_REQUESTS"
        cluster.stop_redis()
        cluster.start_redis()
        await every_replica_subscribed_again(cluster, f"chat:room:clan:{clan}")
        await sender.post("clan", "first after the restart")  # Redis forgot the bucket: a full one
        assert await refused(sender, "second after the restart") == "TOO_MANY_REQUESTS"


async def refused(sender: Client, content: str) -> str:
    """Send a clan message that must be refused; the reason of the one error frame."""
    await sender.send({"event": "clanMessage", "data": {"content": content}})
    frame = await sender.recv()
    assert "error" in frame, frame
    return str(frame["error"][0]["reason"])
