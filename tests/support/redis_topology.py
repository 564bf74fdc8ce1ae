"""What the replica suites need to run over "one Redis" and "Redis Cluster": the servers, names, admin access."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from chatserver.broker.redis_names import RedisNames
from tools.cluster import Cluster
from tools.redis_cluster import LocalRedisCluster

TOPOLOGIES = ["one-redis", "redis-cluster"]


@contextmanager
def replicas_on(topology: str, workdir: Path, env: Mapping[str, str], replicas: int = 3) -> Iterator[Cluster]:
    """``replicas`` chat servers on their own ``redis-server``, or on a local three-master Redis Cluster."""
    if topology == "one-redis":
        with Cluster(replicas, workdir=workdir, env=env) as running:
            yield running
        return
    with LocalRedisCluster(3, workdir=workdir / "redis-cluster") as redis_cluster:
        with Cluster(replicas, workdir=workdir, env=env, redis_url=redis_cluster.url) as running:
            yield running


def names_for(topology: str) -> RedisNames:
    return RedisNames("chat:", sharded=topology == "redis-cluster")


def publish_to_room_channel(cluster: Cluster, topology: str, room: str, text: str) -> int:
    """What a foreign publisher writing straight to a room's channel does; how many replicas got it."""
    channel = names_for(topology).room_channel(room)
    if topology == "redis-cluster":
        with RedisCluster.from_url(cluster.redis_url) as client:
            return int(client.spublish(channel, text))
    with redis.Redis.from_url(cluster.redis_url) as client:
        return int(client.publish(channel, text))


def incr_room_seq(cluster: Cluster, topology: str, room: str) -> None:
    """Take a room's next sequence number, as if a frame had been published and lost."""
    key = names_for(topology).seq_key(room)
    client: redis.Redis | RedisCluster
    with (RedisCluster if topology == "redis-cluster" else redis.Redis).from_url(cluster.redis_url) as client:
        client.incr(key)


def on_every_master(cluster: Cluster, topology: str, command: Callable[[redis.Redis], int]) -> int:
    """Run an admin command on one Redis, or on every master of the cluster; the sum of the answers."""
    if topology == "one-redis":
        with redis.Redis.from_url(cluster.redis_url) as client:
            return command(client)
    total = 0
    with RedisCluster.from_url(cluster.redis_url) as cluster_client:
        masters = [(node.host, int(node.port)) for node in cluster_client.get_primaries()]
    for host, port in masters:
        with redis.Redis(host=host, port=port) as client:
            total += command(client)
    return total


def room_subscribers(cluster: Cluster, topology: str, room: str) -> int:
    """How many subscriptions the room's channel has (on its master, for a cluster)."""
    channel = names_for(topology).room_channel(room)
    if topology == "one-redis":
        with redis.Redis.from_url(cluster.redis_url) as client:
            return int(client.pubsub_numsub(channel)[0][1])
    with RedisCluster.from_url(cluster.redis_url) as client:
        node = client.get_node_from_key(channel)
    with redis.Redis(host=node.host, port=int(node.port)) as master:
        return int(master.execute_command("PUBSUB", "SHARDNUMSUB", channel)[1])


def key_exists(cluster: Cluster, topology: str, key: str) -> bool:
    client: redis.Redis | RedisCluster
    with (RedisCluster if topology == "redis-cluster" else redis.Redis).from_url(cluster.redis_url) as client:
        return bool(client.exists(key))
