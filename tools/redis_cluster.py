"""A local Redis Cluster for development, tests and benchmarks: ``redis-server --cluster-enabled yes`` nodes
joined by ``redis-cli --cluster create``, every file in one work directory, torn down on ``stop``.

``LocalRedisCluster(3)`` is three masters; ``replicas=1`` adds one replica to each, which the
failover tests promote by killing its master. ``url`` names the first master: the chat server given
it finds the rest of the cluster itself. Debian's ``redis-server`` package has both programs.
On its own: ``python -m tools.redis_cluster --masters 3 --replicas 1`` runs one until Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import redis
from redis.cluster import RedisCluster

from tools.processes import LOCALHOST, ManagedProcess, ProcessError, check_can_listen, free_port, program

READY_TIMEOUT = 30.0
CREATE_TIMEOUT = 30.0
START_ATTEMPTS = 2
NODE_TIMEOUT_MS = 1000
"""How long a master may be unreachable before its replica takes over: short, so failover tests are quick."""


class RedisClusterError(ProcessError):
    """A node could not start, or the cluster did not form; ``summary`` says which in one line."""


def _free_port(avoid: set[int]) -> int:
    """A free port whose cluster-bus port (port + 10000) is free too and still a valid port."""
    while True:
        port = free_port(LOCALHOST, avoid)
        if port + 10000 > 65535:
            avoid.add(port)
            continue
        try:
            check_can_listen(LOCALHOST, port + 10000)
        except ProcessError:
            avoid.add(port)
            continue
        return port


class RedisNode:
    """One ``redis-server`` of the cluster, on ``port`` (its cluster bus on ``port + 10000``)."""

    def __init__(self, port: int, workdir: Path, wrapper: Sequence[str] = ()) -> None:
        self.port = port
        argv = [*wrapper, program("redis-server"), "--port", str(port), "--bind", LOCALHOST]
        argv += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"]
        argv += ["--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--cluster-replica-validity-factor", "0"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
        self.log_path = workdir / f"redis-{port}.log"
        self.process = ManagedProcess(f"redis node {self.address}", argv, self.log_path, ready=self._answers, port=port)

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process.running

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def client(self) -> redis.Redis:
        return redis.Redis(host=LOCALHOST, port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> None:
        self.process.start()

    def role(self) -> str:
        """``master`` or ``slave``, as the node itself says."""
        with self.client() as client:
            return str(client.info("replication")["role"])

    def node_id(self) -> str:
        with self.client() as client:
            return str(client.execute_command("CLUSTER", "MYID").decode())

    def kill(self) -> None:
        """SIGKILL, as a crash or a lost machine: the cluster must notice and promote a replica."""
        self.process.kill()

    def stop(self) -> None:
        self.process.stop()

    def _answers(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except (redis.RedisError, OSError):
            return False


class LocalRedisCluster:
    """``masters`` masters with ``replicas`` replicas each on free ports; ``start()`` or ``with``."""

    def __init__(
        self,
        masters: int = 3,
        *,
        replicas: int = 0,
        workdir: Path | str | None = None,
        wrapper: Sequence[str] = (),
    ) -> None:
        """``wrapper`` goes before each ``redis-server`` command line (``taskset -c 0`` in the benchmarks)."""
        if masters < 3:
            raise RedisClusterError("a Redis Cluster needs at least 3 masters")
        if replicas < 0:
            raise RedisClusterError("replicas per master cannot be negative")
        self.masters, self.replicas = masters, replicas
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="chatserver-redis-cluster-")).resolve()
        self._wrapper = tuple(wrapper)
        self.nodes = self._fresh_nodes(masters * (1 + replicas))

    @property
    def url(self) -> str:
        """The first node's URL: enough for a cluster client to find every node."""
        return f"redis://{self.nodes[0].address}/0"

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def start(self) -> LocalRedisCluster:
        """Start every node, join them (masters first), and wait until every slot is served.

        A port taken by someone else between choosing and binding it (the node or its cluster bus)
        makes that attempt fail; the next one runs on fresh ports.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start_once()
                return self
            except ProcessError:
                self.stop()
                if attempt == START_ATTEMPTS:
                    raise
                self.nodes = self._fresh_nodes(len(self.nodes))
            except BaseException:
                self.stop()
                raise
        return self

    def _start_once(self) -> None:
        for node in self.nodes:
            node.start()
        argv = [program("redis-cli"), "--cluster", "create", *(node.address for node in self.nodes)]
        argv += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        try:
            created = subprocess.run(argv, capture_output=True, text=True, timeout=CREATE_TIMEOUT)
        except subprocess.TimeoutExpired as timed_out:
            raise RedisClusterError(f"redis-cli --cluster create did not finish in {CREATE_TIMEOUT:g}s") from timed_out
        if created.returncode != 0:
            raise RedisClusterError("redis-cli --cluster create failed", f"{created.stdout}{created.stderr}")
        _wait(self.healthy, "the Redis Cluster to serve every slot")

    def _fresh_nodes(self, count: int) -> list[RedisNode]:
        taken: set[int] = set()
        nodes = []
        for _ in range(count):
            port = _free_port(taken)
            taken.update((port, port + 10000))
            nodes.append(RedisNode(port, self.workdir, self._wrapper))
        return nodes

    def stop(self) -> None:
        """Stop every node; idempotent. The work directory (logs, node configs) is kept."""
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalRedisCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def client(self) -> RedisCluster:
        """A cluster client for tests and tools (admin commands, sharded publishes)."""
        return RedisCluster(host=LOCALHOST, port=self.running_nodes()[0].port, socket_timeout=2)

    def running_nodes(self) -> list[RedisNode]:
        return [node for node in self.nodes if node.running]

    def healthy(self) -> bool:
        """Every running node sees the cluster as ``ok`` with all 16384 slots assigned to live masters."""
        for node in self.running_nodes():
            try:
                with node.client() as client:
                    info = client.cluster("info")
            except (redis.RedisError, OSError):
                return False
            if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != 16384:
                return False
        return True

    def master_of(self, key: str) -> RedisNode:
        """The node serving ``key``'s slot now."""
        with self.client() as client:
            node = client.get_node_from_key(key)
        return next(n for n in self.nodes if n.port == int(node.port))

    def kill_master_of(self, key: str) -> RedisNode:
        """Kill the master serving ``key`` and wait until one of its replicas serves the slot instead."""
        if not self.replicas:
            raise RedisClusterError("a failover needs replicas: start the cluster with replicas=1")
        doomed = self.master_of(key)
        doomed.kill()
        _wait(
            lambda: self.healthy() and self._served_by_another(key, doomed),
            f"a replica to take over from {doomed.address}",
        )
        return doomed

    def move_slot_of(self, key: str) -> RedisNode:
        """Move ``key``'s slot, with its keys, to another master, as a resharding does; returns the new owner."""
        with self.client() as cluster:
            slot = int(cluster.keyslot(key))
        source = self.master_of(key)
        target = next(node for node in self.running_nodes() if node.port != source.port and node.role() == "master")
        ids = {node.port: node.node_id() for node in (source, target)}
        with source.client() as old, target.client() as new:
            new.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.port])
            old.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.port])
            while keys := old.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                old.execute_command("MIGRATE", LOCALHOST, target.port, "", 0, 5000, "KEYS", *keys)
        for node in self.running_nodes():
            if node.role() == "master":
                with node.client() as client:
                    client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target.port])
        _wait(lambda: self.healthy() and self.master_of(key).port == target.port, f"slot {slot} to move")
        return target

    def describe(self) -> list[str]:
        """One line per node, as a command line tool prints them."""
        return [
            f"redis      redis://{node.address}/0  {node.role() if node.running else 'stopped'}  log {node.log_path}"
            for node in self.nodes
        ]

    def _served_by_another(self, key: str, old: RedisNode) -> bool:
        try:
            return self.master_of(key).port != old.port
        except (redis.RedisError, OSError):
            return False


def _wait(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            raise RedisClusterError(f"timed out after {READY_TIMEOUT:g}s waiting for {what}")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> None:
    """Start a cluster, print its URL and nodes, wait for SIGINT or SIGTERM, stop it."""
    parser = argparse.ArgumentParser(prog="python -m tools.redis_cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--masters", type=int, default=3, help="number of masters (at least 3; default 3)")
    parser.add_argument("--replicas", type=int, default=0, help="replicas per master (default 0)")
    parser.add_argument("--workdir", type=Path, help="directory for node configs and logs (default: a new one)")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        with LocalRedisCluster(args.masters, replicas=args.replicas, workdir=args.workdir) as cluster:
            print(f"redis cluster: REDIS_URL={cluster.url}  workdir {cluster.workdir}")
            for line in cluster.describe():
                print(f"  {line}")
            print("Press Ctrl-C (or send SIGTERM) to stop.", flush=True)
            stopping.wait()
    except ProcessError as error:
        sys.exit(f"redis cluster: {error.summary}")


if __name__ == "__main__":
    main()
