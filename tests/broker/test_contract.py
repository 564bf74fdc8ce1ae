"""The broker contract, one suite over every broker: in-process, one Redis, a Redis Cluster (real servers).

Two workers are two broker instances on one Redis (for the in-process broker, one instance: there is
only one worker). A test subscribes the receiving worker, publishes from the other, and reads what the
receiver's handler was given. What only Redis can do (foreign publishers, killed subscriber
connections, the membership queue's bound) runs on one Redis and on the cluster; a restart on one
Redis; a failover and a moved slot on the cluster.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from chatserver.broker.base import Broker, BrokerUnavailable, RoomFrame
from chatserver.broker.memory import MemoryBroker
from chatserver.broker.redis import MEMBERSHIP_QUEUE_LIMIT, RedisBroker
from chatserver.broker.redis_names import RedisNames
from chatserver.protocol import MembershipAction, MembershipChange
from tests.broker.doubles import Recorder, SeqSkippingBroker
from tests.broker.servers import RedisServer
from tools.redis_cluster import LocalRedisCluster

DROPPING = pytest.param(
    "dropping", marks=pytest.mark.xfail(strict=True, reason="the contract catches a broker that drops a number")
)


@dataclass
class Workers:
    """A receiving worker (its broker and what its handler got) and the broker another worker publishes on."""

    receiver: Broker
    received: Recorder
    publisher: Broker
    names: RedisNames
    url: str = ""

    def publish_raw(self, room: str, text: str) -> int:
        """What a foreign publisher writing straight to a room's channel does; how many subscribers got it."""
        if self.names.sharded:
            with RedisCluster.from_url(self.url) as cluster:
                return int(cluster.spublish(self.names.room_channel(room), text))
        with redis.Redis.from_url(self.url) as admin:
            return int(admin.publish(self.names.room_channel(room), text))

    def kill_subscribers(self) -> int:
        """``CLIENT KILL TYPE pubsub`` on the Redis, or on every master of the cluster; how many were cut."""
        if not self.names.sharded:
            with redis.Redis.from_url(self.url) as admin:
                return int(admin.client_kill_filter(_type="pubsub"))
        with RedisCluster.from_url(self.url) as cluster:
            masters = [(node.host, int(node.port)) for node in cluster.get_primaries()]
        killed = 0
        for host, port in masters:
            with redis.Redis(host=host, port=port) as admin:
                killed += int(admin.client_kill_filter(_type="pubsub"))
        return killed

    def publish_membership_raw(self, text: str) -> int:
        """The game backend's way: plain ``PUBLISH`` on the membership channel, to any node."""
        with redis.Redis.from_url(self.url) as admin:
            return int(admin.publish(self.names.membership, text))


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("broker-redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    with LocalRedisCluster(3, workdir=tmp_path_factory.mktemp("broker-redis-cluster")) as cluster:
        yield cluster


async def started(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Workers]:
    received = Recorder()
    url = ""
    if kind in ("redis", "cluster"):
        url = request.getfixturevalue("redis_server" if kind == "redis" else "redis_cluster").url
        names = RedisNames(f"test{secrets.token_hex(4)}:", sharded=kind == "cluster")  # fresh for every test
        receiver: Broker = RedisBroker(url, names.prefix)
        publisher: Broker = RedisBroker(url, names.prefix)
        await publisher.start(Recorder())
    else:
        names = RedisNames("", sharded=False)
        receiver = publisher = SeqSkippingBroker(every=3) if kind == "dropping" else MemoryBroker()
    await receiver.start(received)
    await listening(receiver)
    if isinstance(receiver, RedisBroker):
        assert receiver.sharded is names.sharded, "the broker did not tell a cluster from one Redis"
    try:
        yield Workers(receiver, received, publisher, names, url)
    finally:
        await receiver.stop()
        if publisher is not receiver:
            await publisher.stop()


async def listening(broker: Broker) -> None:
    """Wait until the broker answers ping: a Redis broker's listener connects in the background after start."""
    deadline = asyncio.get_running_loop().time() + 10.0
    while not await broker.ping():
        assert asyncio.get_running_loop().time() < deadline, "the broker never became ready"
        await asyncio.sleep(0.05)


@pytest.fixture(params=["memory", "redis", "cluster"])
async def workers(request: pytest.FixtureRequest) -> AsyncIterator[Workers]:
    async for running in started(request.param, request):
        yield running


@pytest.fixture(params=["redis", "cluster"])
async def redis_workers(request: pytest.FixtureRequest) -> AsyncIterator[Workers]:
    async for running in started(request.param, request):
        yield running


def frame(n: int) -> RoomFrame:
    return RoomFrame(f'{{"n": {n}}}', message_id=f"m{n}", updated_at=f"2026-01-01T00:00:00.{n:03d}Z", sent_at=1.5)


def change(player: str, action: MembershipAction = MembershipAction.JOIN) -> MembershipChange:
    return MembershipChange(player_id=player, action=action, clan_id="clan-1")


def assert_numbered_without_holes(seqs: list[int]) -> None:
    """A room's numbers as one worker received them: each one more than the one before."""
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"numbers with holes: {seqs}"


async def test_a_frame_published_once_subscribe_returns_arrives_as_it_was_sent(workers: Workers) -> None:
    await workers.receiver.subscribe("global")
    await workers.publisher.publish("global", frame(1))
    room, got = await workers.received.next_frame()
    assert (room, got) == ("global", RoomFrame('{"n": 1}', "m1", frame(1).updated_at, 1.5, seq=1))


@pytest.mark.parametrize("workers", ["memory", "redis", "cluster", DROPPING], indirect=True)
async def test_a_rooms_frames_arrive_in_order_numbered_without_holes(workers: Workers) -> None:
    await workers.receiver.subscribe("clan:a")
    for n in range(30):
        await workers.publisher.publish("clan:a", frame(n))
    received = [await workers.received.next_frame() for _ in range(20)]
    assert_numbered_without_holes([got.seq for _, got in received])
    assert [got.message_id for _, got in received] == [f"m{n}" for n in range(20)]


async def test_each_room_is_numbered_on_its_own(workers: Workers) -> None:
    for room in ("clan:a", "clan:b"):
        await workers.receiver.subscribe(room)
    for n, room in enumerate(["clan:a", "clan:b", "clan:a", "clan:b"]):
        await workers.publisher.publish(room, frame(n))
    received = [await workers.received.next_frame() for _ in range(4)]
    assert [(room, got.seq) for room, got in received] == [("clan:a", 1), ("clan:b", 1), ("clan:a", 2), ("clan:b", 2)]


async def test_after_unsubscribe_no_frame_of_that_room_arrives(workers: Workers) -> None:
    for room in ("clan:a", "clan:b"):
        await workers.receiver.subscribe(room)
    await workers.receiver.unsubscribe("clan:a")
    await workers.publisher.publish("clan:a", frame(1))
    await workers.publisher.publish("clan:b", frame(2))
    room, got = await workers.received.next_frame()
    assert (room, got.message_id) == ("clan:b", "m2")
    assert workers.received.frames.empty()


async def test_a_room_nobody_subscribed_to_delivers_nothing(workers: Workers) -> None:
    await workers.receiver.subscribe("global")
    await workers.publisher.publish("clan:nobody", frame(1))
    await workers.publisher.publish("global", frame(2))
    assert (await workers.received.next_frame())[1].message_id == "m2"


async def test_membership_changes_arrive_in_publish_order(workers: Workers) -> None:
    changes = [change(f"p{n}", MembershipAction.LEAVE if n % 2 else MembershipAction.JOIN) for n in range(10)]
    for each in changes:
        await workers.publisher.publish_membership(each)
    assert [await workers.received.next_membership() for _ in changes] == changes


async def test_membership_changes_past_the_queue_bound_wait_in_redis_and_all_arrive_in_order(
    redis_workers: Workers,
) -> None:
    """A worker applying changes slowly: its queue stops at the bound, and nothing is dropped."""
    receiver = redis_workers.receiver
    assert isinstance(receiver, RedisBroker)
    redis_workers.received.membership_gate.clear()
    changes = [change(f"p{n}") for n in range(MEMBERSHIP_QUEUE_LIMIT + 50)]
    for each in changes:
        redis_workers.publish_membership_raw(each.model_dump_json())
    for _ in range(200):
        if receiver.membership_backlog == MEMBERSHIP_QUEUE_LIMIT:
            break
        await asyncio.sleep(0.05)
    assert receiver.membership_backlog == MEMBERSHIP_QUEUE_LIMIT
    redis_workers.received.membership_gate.set()
    assert [await redis_workers.received.next_membership() for _ in changes] == changes
    assert receiver.membership_backlog == 0


async def test_a_killed_subscriber_connection_is_noticed_and_the_worker_resubscribes(redis_workers: Workers) -> None:
    """No silent reconnect inside the client: the handler must hear of it, frames may have been lost."""
    await redis_workers.receiver.subscribe("clan:a")
    before = redis_workers.received.resubscribed
    assert redis_workers.kill_subscribers() >= 1
    await redis_workers.received.resubscribed_at_least(before + 1)
    await redis_workers.publisher.publish("clan:a", frame(1))
    assert (await redis_workers.received.next_frame())[1].message_id == "m1"


async def test_foreign_messages_that_are_not_ours_are_ignored_and_delivery_goes_on(redis_workers: Workers) -> None:
    await redis_workers.receiver.subscribe("global")
    for garbage in ("not a chat frame", "1 x y\n{}", ""):
        assert redis_workers.publish_raw("global", garbage) == 1
    for garbage in ("{", '{"player_id": "p", "action": "dance", "clan_id": "c"}'):
        redis_workers.publish_membership_raw(garbage)
    await redis_workers.publisher.publish("global", frame(1))
    await redis_workers.publisher.publish_membership(change("p1"))
    assert (await redis_workers.received.next_frame())[1].message_id == "m1"
    assert await redis_workers.received.next_membership() == change("p1")
    assert redis_workers.received.frames.empty() and redis_workers.received.memberships.empty()


async def test_after_a_redis_restart_the_worker_resubscribes_and_no_publish_is_lost(tmp_path: Path) -> None:
    """The first publish after a restart goes through; one refused while Redis is down is published again."""
    server = RedisServer(tmp_path).start()
    received = Recorder()
    receiver, publisher = RedisBroker(server.url, "chat:"), RedisBroker(server.url, "chat:")
    await receiver.start(received)
    await publisher.start(Recorder())
    try:
        await receiver.subscribe("global")
        await received.resubscribed_at_least(1)
        await publisher.publish("global", frame(1))
        assert (await received.next_frame())[1].message_id == "m1"

        server.stop()
        server.start()
        await received.resubscribed_at_least(2)
        await publisher.publish("global", frame(2))
        assert (await received.next_frame())[1].message_id == "m2"

        server.stop()
        with pytest.raises(BrokerUnavailable):
            await publisher.publish("global", frame(3))
        assert not await publisher.ping()
        server.start()
        with redis.Redis.from_url(server.url) as admin:
            for _ in range(200):  # published again in the background (a receiver may not be back yet)
                if admin.get("chat:seq:global") == b"1":
                    break
                await asyncio.sleep(0.05)
            assert admin.get("chat:seq:global") == b"1"
        await received.resubscribed_at_least(3)
        await publisher.publish("global", frame(4))
        after = (await received.next_frame())[1]
        if after.message_id == "m3":  # the receiver was back before the publisher published it again
            after = (await received.next_frame())[1]
        assert after == dataclasses.replace(frame(4), seq=2)
    finally:
        await receiver.stop()
        await publisher.stop()
        server.stop()


async def test_after_a_cluster_failover_the_worker_resubscribes_on_the_new_master(tmp_path: Path) -> None:
    """The master of a room's slot dies and its replica takes over: subscriptions and publishes follow."""
    with LocalRedisCluster(3, replicas=1, workdir=tmp_path) as cluster:
        names = RedisNames("chat:", sharded=True)
        received = Recorder()
        receiver, publisher = RedisBroker(cluster.url, "chat:"), RedisBroker(cluster.url, "chat:")
        await receiver.start(received)
        await publisher.start(Recorder())
        try:
            await listening(receiver)
            rooms = ["global", *(f"clan:{n}" for n in range(6))]
            for room in rooms:
                await receiver.subscribe(room)
            await publisher.publish("global", frame(1))
            assert (await received.next_frame())[1].message_id == "m1"
            resubscribed = received.resubscribed
            doomed = cluster.master_of(names.room_channel("global"))
            await asyncio.to_thread(cluster.kill_master_of, names.room_channel("global"))
            await received.resubscribed_at_least(resubscribed + 1)
            await listening(publisher)
            for n, room in enumerate(rooms, start=2):
                await publisher.publish(room, frame(n))
            got = [await received.next_frame() for _ in rooms]
            assert sorted((room, f.message_id) for room, f in got) == sorted(
                (room, f"m{n}") for n, room in enumerate(rooms, start=2)
            )
            assert cluster.master_of(names.room_channel("global")).port != doomed.port
        finally:
            await receiver.stop()
            await publisher.stop()


async def test_after_a_rooms_slot_moves_to_another_master_the_worker_follows_it(
    redis_cluster: LocalRedisCluster,
) -> None:
    """A resharding: Redis unsubscribes the room's channel; the worker resubscribes on the new owner."""
    names = RedisNames(f"test{secrets.token_hex(4)}:", sharded=True)
    received = Recorder()
    receiver, publisher = RedisBroker(redis_cluster.url, names.prefix), RedisBroker(redis_cluster.url, names.prefix)
    await receiver.start(received)
    await publisher.start(Recorder())
    try:
        await listening(receiver)
        await receiver.subscribe("clan:moving")
        await publisher.publish("clan:moving", frame(1))
        assert (await received.next_frame())[1].seq == 1
        resubscribed = received.resubscribed
        old = redis_cluster.master_of(names.room_channel("clan:moving"))
        new = await asyncio.to_thread(redis_cluster.move_slot_of, names.room_channel("clan:moving"))
        assert new.port != old.port
        await received.resubscribed_at_least(resubscribed + 1)
        await publisher.publish("clan:moving", frame(2))
        assert (await received.next_frame())[1] == dataclasses.replace(frame(2), seq=2)  # the counter moved too
    finally:
        await receiver.stop()
        await publisher.stop()
