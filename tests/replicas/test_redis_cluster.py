"""Three replicas on a Redis Cluster whose master fails while clients chat: nothing accepted is lost;
and ``python -m tools.redis_cluster``, the local cluster for developers.

Three masters with a replica each (``tools/redis_cluster.py``), replicas sharing one store (the
MongoDB wire stand-in), as in production. The shared replica suite on a cluster is in
``test_replicas.py``; this module is what only a cluster with replicas can show.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redis.cluster import RedisCluster

from chatserver.broker.redis_names import RedisNames
from tests.support.harness import ROOT, Client, suite_env, token
from tools.cluster import Cluster
from tools.redis_cluster import LocalRedisCluster

log = logging.getLogger(__name__)

STREAM_INTERVAL_SECONDS = 0.02
AFTER_FAILOVER = 40
ARRIVAL_TIMEOUT = 30.0


async def read_contents(client: Client, into: list[tuple[float, str]], stop: asyncio.Event) -> None:
    """Every message content the client is shown, with when it arrived, until ``stop``."""
    while not stop.is_set():
        try:
            frame: dict[str, Any] = await client.recv(timeout=0.2)
        except TimeoutError:
            continue
        if frame.get("event") == "newMessage":
            into.append((time.monotonic(), frame["message"]["content"]))


async def test_a_master_failover_during_a_steady_stream_loses_and_repeats_nothing_for_any_client(
    tmp_path: Path, mongo_standin_url: str, new_id: Callable[[], str]
) -> None:
    """The gap is logged, not asserted: run with ``-o log_cli=true`` to see how long delivery paused."""
    store = {
        "MONGODB_URL": mongo_standin_url,
        "MONGODB_DB": f"chat_test_{secrets.token_hex(4)}",
        "CHAT_PLAYERS_FROM_DB": "false",
    }
    with (
        LocalRedisCluster(3, replicas=1, workdir=tmp_path / "redis") as redis_cluster,
        Cluster(3, workdir=tmp_path / "chat", redis_url=redis_cluster.url, env=suite_env(**store)) as cluster,
    ):
        clan = new_id()
        readers = [await Client.open(replica.ws_url, token(new_id(), clan_id=clan)) for replica in cluster.replicas]
        sender = await Client.open(cluster.replicas[0].ws_url, token(new_id(), clan_id=clan))
        shown: list[list[tuple[float, str]]] = [[] for _ in readers]
        stop = asyncio.Event()
        reading = [asyncio.create_task(read_contents(r, into, stop)) for r, into in zip(readers, shown, strict=True)]

        sent: list[str] = []

        async def stream(count: int) -> None:
            for _ in range(count):
                content = f"steady {len(sent)}"
                await sender.send({"event": "clanMessage", "data": {"content": content}})
                sent.append(content)
                await asyncio.sleep(STREAM_INTERVAL_SECONDS)

        streaming = asyncio.create_task(stream(20))
        await streaming
        channel = RedisNames("chat:", sharded=True).room_channel(f"clan:{clan}")
        failover = asyncio.create_task(asyncio.to_thread(redis_cluster.kill_master_of, channel))
        killed_at = time.monotonic()
        while not failover.done():
            await stream(1)
        await failover
        await stream(AFTER_FAILOVER)

        deadline = time.monotonic() + ARRIVAL_TIMEOUT
        while any(len({c for _, c in into}) < len(sent) for into in shown) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*reading)

        for into in shown:
            counts = Counter(content for _, content in into)
            assert sorted(counts) == sorted(sent), f"missing: {sorted(set(sent) - set(counts))}"
            assert max(counts.values()) == 1, f"shown twice: {[c for c, n in counts.items() if n > 1]}"
        gap = max(b - a for into in shown for (a, _), (b, _) in zip(into, into[1:]) if b > killed_at)
        log.info("longest pause in delivery after the master was killed: %.2fs", gap)


def test_the_local_cluster_command_refuses_a_bad_count_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.redis_cluster", "--masters", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        "redis cluster: a Redis Cluster needs at least 3 masters\n",
    )


def test_the_local_cluster_command_prints_a_redis_url_that_serves_and_stops_every_node_on_sigterm(
    tmp_path: Path,
) -> None:
    command = [sys.executable, "-m", "tools.redis_cluster", "--masters", "3", "--workdir", str(tmp_path)]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as running:
        assert running.stdout is not None
        first = running.stdout.readline()
        assert first.startswith("redis cluster: REDIS_URL=redis://127.0.0.1:"), first
        url = first.split("REDIS_URL=", 1)[1].split()[0]
        nodes = [running.stdout.readline() for _ in range(3)]
        assert all(" master " in line for line in nodes), nodes
        with RedisCluster.from_url(url) as cluster:
            assert cluster.set("{clan:x}probe", "1") and cluster.get("{clan:x}probe") == b"1"
        running.send_signal(signal.SIGTERM)
        assert running.wait(timeout=30) == 0
    ports = [int(line.split("redis://127.0.0.1:", 1)[1].split("/")[0]) for line in nodes]
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
