"""The local cluster (``scripts/cluster``, ``tools/cluster.py``): Redis, replicas and nginx on one machine.

As a client and an operator see them.

Clients connect to nginx's public port only; which replica served a socket is read from that
replica's own ``connection opened`` log line, as an operator would find it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from chatserver.settings import DEV_JWT_SECRET
from tests.support.harness import FRAME_TIMEOUT, ROOT, Client, ServerProcess, clean_env, free_port, suite_env, token
from tools.cluster import Cluster
from tools.processes import ProcessError, check_can_listen

CLUSTER = ROOT / "scripts" / "cluster"
REPLICAS = 3
CLIENTS = 12
COMMAND_TIMEOUT = 60.0
READY_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three replicas behind nginx, shared by the client-side tests of this module."""
    with Cluster(REPLICAS, workdir=tmp_path_factory.mktemp("cluster"), env=suite_env()) as running:
        yield running


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A two-replica cluster for one test that kills or stops parts of it."""
    with Cluster(2, workdir=tmp_path / "cluster", env=suite_env()) as running:
        yield running


async def connect_through_nginx(cluster: Cluster, player_id: str) -> Client:
    return await Client.open(cluster.ws_url, token(player_id))


async def serving_replica(cluster: Cluster, player_id: str, timeout: float = FRAME_TIMEOUT) -> int:
    """The index of the replica that logged ``connection opened`` for this player (logged before ``ready``)."""
    deadline = time.monotonic() + timeout
    while True:
        for replica in cluster.replicas:
            if any(_is_opened(line, player_id) for line in replica.log_path.read_text().splitlines()):
                return replica.index
        assert time.monotonic() < deadline, f"no replica logged a connection for {player_id}"
        await asyncio.sleep(0.05)


def _is_opened(line: str, player_id: str) -> bool:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return False
    return bool(entry.get("message") == "connection opened" and entry.get("player_id") == player_id)


async def open_clients(cluster: Cluster, new_id: Callable[[], str]) -> tuple[list[Client], set[int]]:
    """``CLIENTS`` players connected one after another through nginx, and the replicas that serve them."""
    players = [new_id() for _ in range(CLIENTS)]
    clients = [await connect_through_nginx(cluster, player) for player in players]
    return clients, {await serving_replica(cluster, player) for player in players}


def wait_for_status(url: str, status: int, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while (answered := httpx.get(url).status_code) != status:
        assert time.monotonic() < deadline, f"{url} still answers {answered}, not {status}"
        time.sleep(0.1)


def port_is_free(port: int) -> bool:
    """A server could listen on ``port`` again (a socket in TIME_WAIT does not count)."""
    try:
        check_can_listen("127.0.0.1", port)
    except ProcessError:
        return False
    return True


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_nginx_answers_healthz_and_readyz(cluster: Cluster) -> None:
    assert httpx.get(f"{cluster.public_url}/healthz").status_code == 200
    ready = httpx.get(f"{cluster.public_url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"


async def test_sockets_through_nginx_land_on_more_than_one_replica(cluster: Cluster, new_id: Callable[[], str]) -> None:
    _, replicas = await open_clients(cluster, new_id)
    assert len(replicas) > 1, f"all {CLIENTS} sockets landed on replica {replicas}"


async def test_a_global_message_reaches_every_socket_on_every_replica_exactly_once(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    clients, replicas = await open_clients(cluster, new_id)
    assert len(replicas) > 1
    sender = clients[0]
    first, second = f"hello from one replica {new_id()}", f"and again {new_id()}"

    await sender.send({"event": "globalMessage", "data": {"content": first}})
    received = await asyncio.gather(*(client.recv() for client in clients))
    assert [(frame["event"], frame["message"]["content"]) for frame in received] == [("newMessage", first)] * CLIENTS

    # Every replica delivers in publish order, so a duplicate of the first would arrive before this one.
    await sender.send({"event": "globalMessage", "data": {"content": second}})
    received = await asyncio.gather(*(client.recv() for client in clients))
    assert [frame["message"]["content"] for frame in received] == [second] * CLIENTS


def test_nginx_skips_a_killed_replica_and_it_restarts_on_its_port(own_cluster: Cluster) -> None:
    own_cluster.kill_replica(0)
    statuses = [httpx.get(f"{own_cluster.public_url}/healthz").status_code for _ in range(6)]
    assert statuses == [200] * 6

    own_cluster.start_replica(0)
    assert httpx.get(f"{own_cluster.replicas[0].url}/healthz").status_code == 200


def test_readyz_through_nginx_is_503_while_redis_is_down_and_200_after_it_restarts(own_cluster: Cluster) -> None:
    own_cluster.stop_redis()
    wait_for_status(f"{own_cluster.public_url}/readyz", 503)

    own_cluster.start_redis()
    for replica in own_cluster.replicas:
        wait_for_status(f"{replica.url}/readyz", 200)
    assert httpx.get(f"{own_cluster.public_url}/readyz").status_code == 200


def test_stop_ends_every_process_and_frees_every_port(tmp_path: Path) -> None:
    cluster = Cluster(2, workdir=tmp_path, env=suite_env()).start()
    pids, ports = cluster.pids(), cluster.ports
    assert len(pids) == 4 and len(ports) == 4  # nginx, two replicas, Redis

    cluster.stop()

    assert [pid for pid in pids if process_exists(pid)] == []
    assert [port for port in ports if not port_is_free(port)] == []
    assert cluster.pids() == []


def test_scripts_cluster_prints_its_urls_exits_0_on_sigterm_and_removes_its_temporary_files(tmp_path: Path) -> None:
    port = free_port()
    output = tmp_path / "output.txt"
    argv = ["--replicas", "2", "--port", str(port)]
    with output.open("wb") as sink:
        command = subprocess.Popen([str(CLUSTER), *argv], env=clean_env(), stdout=sink, stderr=subprocess.STDOUT)
    pids: list[int] = []
    try:
        printed = wait_for_output(output, "to stop", command)
        pids = [int(pid) for pid in re.findall(r"\bpid (\d+)", printed)]
        assert f"http://127.0.0.1:{port}" in printed and f"ws://127.0.0.1:{port}/ws/chat" in printed
        assert "replica 0" in printed and "replica 1" in printed and "redis://127.0.0.1:" in printed
        assert "in-process history" in printed
        assert len(pids) == 4
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        found = re.search(r"workdir (\S+)", printed)
        assert found is not None and (workdir := Path(found.group(1))).is_dir()

        command.send_signal(signal.SIGTERM)
        assert command.wait(timeout=COMMAND_TIMEOUT) == 0
    finally:
        _kill_leftovers(command, pids)
    assert output.read_text().endswith("cluster: stopping\ncluster: stopped\n")
    assert [pid for pid in pids if process_exists(pid)] == []
    assert port_is_free(port)
    assert not workdir.exists()


def test_scripts_cluster_reports_a_replica_that_exits_and_stops_with_status_1_when_nginx_dies(
    tmp_path: Path,
) -> None:
    output, workdir = tmp_path / "output.txt", tmp_path / "work"
    argv = ["--replicas", "2", "--port", str(free_port()), "--workdir", str(workdir)]
    with output.open("wb") as sink:
        command = subprocess.Popen([str(CLUSTER), *argv], env=clean_env(), stdout=sink, stderr=subprocess.STDOUT)
    pids: list[int] = []
    try:
        printed = wait_for_output(output, "to stop", command)
        pids = [int(pid) for pid in re.findall(r"\bpid (\d+)", printed)]
        nginx, replica_0 = pids[0], pids[1]

        os.kill(replica_0, signal.SIGKILL)
        wait_for_output(output, "replica 0 exited", command)
        os.kill(nginx, signal.SIGKILL)
        assert command.wait(timeout=COMMAND_TIMEOUT) == 1
    finally:
        _kill_leftovers(command, pids)
    lines = output.read_text().splitlines()
    replica_log, nginx_log = workdir / "replica-0.log", workdir / "nginx-error.log"
    assert re.fullmatch(
        rf"cluster: replica 0 exited with status -9(: .*)? \(log {re.escape(str(replica_log))}\); "
        "nginx sends its requests to the other replicas",
        lines[-2],
    ), lines
    assert re.fullmatch(rf"cluster: nginx exited with status -9(: .*)? \(log {re.escape(str(nginx_log))}\)", lines[-1])
    assert [pid for pid in pids if process_exists(pid)] == []


def test_scripts_cluster_on_a_port_another_server_holds_says_so_in_one_line_and_starts_nothing(
    embedded_server: ServerProcess, tmp_path: Path
) -> None:
    """The other server answers ``/healthz`` on that port too: only the cluster's own nginx may count."""
    workdir = tmp_path / "work"
    argv = ["--replicas", "1", "--port", str(embedded_server.port), "--workdir", str(workdir)]
    result = subprocess.run([str(CLUSTER), *argv], env=clean_env(), capture_output=True, text=True, timeout=60)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"cluster: nginx cannot listen on 127.0.0.1:{embedded_server.port}: address already in use: "
        "is another server running there? Pick another port\n"
    )
    assert sorted(path.name for path in workdir.iterdir()) == [], "nothing was started"


def test_scripts_cluster_on_an_address_this_machine_does_not_have_says_so_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    argv = ["--host", "203.0.113.7", "--port", str(port), "--workdir", str(tmp_path / "work")]
    result = subprocess.run([str(CLUSTER), *argv], env=clean_env(), capture_output=True, text=True, timeout=60)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"cluster: nginx cannot listen on 203.0.113.7:{port}: cannot assign requested address\n"


def test_scripts_cluster_with_a_redis_url_without_scheme_says_so_in_one_line(tmp_path: Path) -> None:
    argv = ["--redis-url", "localhost:6379", "--workdir", str(tmp_path / "work")]
    result = subprocess.run([str(CLUSTER), *argv], env=clean_env(), capture_output=True, text=True, timeout=60)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "cluster: Redis URL 'localhost:6379': Redis URL must specify one of the following schemes "
        "(redis://, rediss://, unix://)\n"
    )


def test_scripts_cluster_with_a_workdir_it_cannot_create_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    workdir = tmp_path / "a-file" / "work"
    argv = ["--port", str(free_port()), "--workdir", str(workdir)]
    result = subprocess.run([str(CLUSTER), *argv], env=clean_env(), capture_output=True, text=True, timeout=60)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"cluster: cannot use {workdir} as the workdir: not a directory\n"


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("--port", "99999", "argument --port: 99999 is not a port number (1-65535)"),
        ("--port", "-5", "argument --port: -5 is not a port number (1-65535)"),
        ("--replicas", "0", "argument --replicas: a cluster needs at least one replica"),
    ],
)
def test_scripts_cluster_refuses_a_bad_option_with_one_error_line(option: str, value: str, error: str) -> None:
    result = subprocess.run([str(CLUSTER), option, value], env=clean_env(), capture_output=True, text=True, timeout=60)

    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == f"scripts/cluster: error: {error}"
    assert "Traceback" not in result.stderr


def wait_for_output(path: Path, text: str, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while text not in (printed := path.read_text()):
        assert process.poll() is None, f"the command exited with {process.returncode}:\n{printed}"
        assert time.monotonic() < deadline, f"the command did not print {text!r}:\n{printed}"
        time.sleep(0.1)
    return printed


def _kill_leftovers(command: subprocess.Popen[bytes], pids: list[int]) -> None:
    """After a failed assertion: no process of the command outlives the test."""
    if command.poll() is None:
        command.kill()
        command.wait()
    for pid in pids:
        if process_exists(pid):
            os.kill(pid, signal.SIGKILL)


async def test_scripts_cluster_with_a_redis_cluster_serves_chat_and_stops_it_all(
    tmp_path: Path, new_id: Callable[[], str]
) -> None:
    port = free_port()
    output = tmp_path / "output.txt"
    argv = ["--replicas", "2", "--port", str(port), "--redis-cluster", "3", "--workdir", str(tmp_path / "w")]
    with output.open("wb") as sink:
        command = subprocess.Popen([str(CLUSTER), *argv], env=clean_env(), stdout=sink, stderr=subprocess.STDOUT)
    try:
        printed = wait_for_output(output, "to stop", command)
        assert "a Redis Cluster of 3 masters at redis://127.0.0.1:" in printed
        bearer = token(new_id(), secret=DEV_JWT_SECRET)  # the command runs with the development secret
        client = await Client.open(f"ws://127.0.0.1:{port}/ws/chat", bearer)
        assert (await client.post("global", "sharded"))["content"] == "sharded"
        await client.close()
        command.send_signal(signal.SIGTERM)
        assert command.wait(timeout=COMMAND_TIMEOUT) == 0
    finally:
        _kill_leftovers(command, [])
    assert port_is_free(port)


def test_scripts_cluster_refuses_a_redis_cluster_of_two_masters_in_one_line() -> None:
    done = subprocess.run([str(CLUSTER), "--redis-cluster", "2"], env=clean_env(), capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith("a Redis Cluster needs at least 3 masters, not 2")
