"""The event stream: every accepted change once in ``chat:events``, read with ``XRANGE``, consumer groups and
``chatserver events``, also across a Redis outage, and at least once while replicas are SIGKILLed in a loop.

Three replicas share one store (MongoStore over the wire stand-in) and one real ``redis-server``.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest
import redis
from websockets.exceptions import ConnectionClosed

from tests.replicas.test_replicas_shared_store import shared_store_env
from tests.support.harness import ROOT, Client, ServerProcess, clean_env, suite_env, token
from tools.cluster import Cluster
from tools.redis_cluster import LocalRedisCluster

STREAM = "chat:events"
ISO_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
OBJECT_ID = re.compile(r"[0-9a-f]{24}")
WAIT_SECONDS = 30.0
WAITING = {"outbox.0": {"$exists": True}}
"""Messages whose outbox holds an event (a worker killed between clearing and unsetting leaves it empty)."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, mongo_standin_url: str) -> Iterator[Cluster]:
    env = shared_store_env(mongo_standin_url, CHAT_EVENTS_REPAIR_SECONDS="3")
    with Cluster(3, workdir=tmp_path_factory.mktemp("events"), env=env) as running:
        yield running


async def on(cluster: Cluster, replica: int, bearer: str) -> Client:
    return await Client.open(cluster.replicas[replica].ws_url, bearer)


def stream_entries(redis_url: str) -> list[dict[str, Any]]:
    with redis.Redis.from_url(redis_url, decode_responses=True) as admin:
        return [json.loads(fields["data"]) for _, fields in admin.xrange(STREAM)]


async def events_about(redis_url: str, message_ids: set[str], count: int) -> list[dict[str, Any]]:
    """The stream's events naming these messages, once there are ``count`` of them (a repaired one comes late)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = [e for e in stream_entries(redis_url) if e["message_id"] in message_ids]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def also_seen_by(*clients: Client) -> None:
    """The other members of the room read the broadcast, so each client's next frame is its own."""
    for client in clients:
        assert (await client.recv())["event"] in ("newMessage", "newReaction")


def without_id_and_at(event: dict[str, Any]) -> dict[str, Any]:
    assert OBJECT_ID.fullmatch(event["id"]) and ISO_MILLIS.fullmatch(event["at"]), event
    return {k: v for k, v in event.items() if k not in ("id", "at")}


def chatserver_events(redis_url: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(**suite_env(**({"REDIS_URL": redis_url} if redis_url else {})))
    command = [sys.executable, "-m", "chatserver", "events", *args]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)


async def test_a_session_on_three_replicas_is_one_event_per_change_in_each_rooms_order(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    clan, ann, ben, cat = new_id(), new_id(), new_id(), new_id()
    a = await on(cluster, 0, token(ann, name="Ann", clan_id=clan))
    b = await on(cluster, 1, token(ben, name="Ben", clan_id=clan))
    c = await on(cluster, 2, token(cat, name="Cat"))

    one = await a.post("clan", "one", feeling="happy")
    await also_seen_by(b)
    two = await c.post("global", "two")
    await also_seen_by(a, b)
    assert (await b.react("clan", one["_id"], "👍"))["event"] == "newReaction"
    await also_seen_by(a)
    assert (await a.react("global", two["_id"], "🔥"))["event"] == "newReaction"
    await also_seen_by(b, c)
    assert (await b.react("clan", one["_id"], "🎉"))["event"] == "newReaction"  # replaces 👍
    await also_seen_by(a)
    assert (await c.react("global", two["_id"], None))["event"] == "newReaction"  # removes nothing: still a change
    await also_seen_by(a, b)
    three = await b.post("clan", "three")
    await also_seen_by(a)
    assert (await a.react("global", two["_id"], None))["event"] == "newReaction"
    await also_seen_by(b, c)

    ids = {one["_id"], two["_id"], three["_id"]}
    events = await events_about(cluster.redis_url, ids, 8)

    assert len({e["id"] for e in events}) == len(events) == 8
    clan_room = {"chat": "clan", "clan_id": clan}
    assert [without_id_and_at(e) for e in events if e["chat"] == "clan"] == [
        {"type": "message.created", **clan_room, "player_id": ann, "message_id": one["_id"], "feeling": "happy"},
        {"type": "reaction.set", **clan_room, "player_id": ben, "message_id": one["_id"], "emoji": "👍"},
        {"type": "reaction.set", **clan_room, "player_id": ben, "message_id": one["_id"], "emoji": "🎉"},
        {"type": "message.created", **clan_room, "player_id": ben, "message_id": three["_id"]},
    ]
    global_room = {"chat": "global", "clan_id": None}
    assert [without_id_and_at(e) for e in events if e["chat"] == "global"] == [
        {"type": "message.created", **global_room, "player_id": cat, "message_id": two["_id"]},
        {"type": "reaction.set", **global_room, "player_id": ann, "message_id": two["_id"], "emoji": "🔥"},
        {"type": "reaction.removed", **global_room, "player_id": cat, "message_id": two["_id"]},
        {"type": "reaction.removed", **global_room, "player_id": ann, "message_id": two["_id"]},
    ]
    assert [e["at"] for e in events if e["type"] == "message.created"] == [
        one["createdAt"], two["createdAt"], three["createdAt"]
    ]  # fmt: skip


async def test_a_quick_response_is_in_its_message_created_event(cluster: Cluster, new_id: Callable[[], str]) -> None:
    player = new_id()
    message = await (await on(cluster, 2, token(player, name="Quick"))).post("global", "gg", responseType="GoodGame")
    [event] = await events_about(cluster.redis_url, {message["_id"]}, 1)
    assert without_id_and_at(event) == {
        "type": "message.created", "chat": "global", "clan_id": None, "player_id": player,
        "message_id": message["_id"], "responseType": "GoodGame",
    }  # fmt: skip


async def test_an_edit_and_a_deletion_are_events_of_the_player_who_made_them(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    player = new_id()
    writer = await on(cluster, 0, token(player, name="Editor"))
    message = await writer.post("global", "first draft")
    await writer.send({"event": "globalMessageEdit", "data": {"message_id": message["_id"], "content": "final"}})
    assert (await writer.recv())["event"] == "editedMessage"
    await writer.send({"event": "globalMessageDelete", "data": {"message_id": message["_id"]}})
    assert (await writer.recv())["event"] == "deletedMessage"
    events = await events_about(cluster.redis_url, {message["_id"]}, 3)
    assert [without_id_and_at(event) for event in events] == [
        {"type": kind, "chat": "global", "clan_id": None, "player_id": player, "message_id": message["_id"]}
        for kind in ("message.created", "message.edited", "message.deleted")
    ]


async def test_a_consumer_group_reads_each_event_once_through_chatserver_events(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    poster = await on(cluster, 1, token(new_id(), name="Poster"))
    for n in range(3):
        await poster.post("global", f"for the group {n}")
    with redis.Redis.from_url(cluster.redis_url, decode_responses=True) as admin:
        deadline = time.monotonic() + WAIT_SECONDS
        while admin.xlen(STREAM) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        everything = [fields["data"] for _, fields in admin.xrange(STREAM)]
    group = f"tasks-{new_id()}"

    first = chatserver_events(cluster.redis_url, "--group", group, "--from", "0", "--count", str(len(everything)))
    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout.splitlines() == everything

    late = await poster.post("global", "after the group read")
    again = chatserver_events(cluster.redis_url, "--group", group, "--from", "0", "--count", "1")
    assert json.loads(again.stdout)["message_id"] == late["_id"], "the group resumes where it acknowledged"
    with redis.Redis.from_url(cluster.redis_url, decode_responses=True) as admin:
        assert admin.xpending(STREAM, group)["pending"] == 0

    plain = chatserver_events(cluster.redis_url, "--from", "0", "--count", "2")
    assert plain.stdout.splitlines() == everything[:2]


async def test_the_readme_python_consumer_handles_and_acknowledges_every_event(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    message = await (await on(cluster, 0, token(new_id(), name="Reader"))).post("global", "read me")
    await events_about(cluster.redis_url, {message["_id"]}, 1)
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"In\nPython \(redis-py\):\n\n```python\n(.*?)```", readme, re.S)
    assert found is not None
    code = found.group(1).replace("redis://localhost:6379/0", cluster.redis_url)
    handled: list[str] = []
    namespace = {"advance_chat_task": lambda player_id, chat, event_id: handled.append(event_id)}
    exec(code.replace("while True:", "for _round in range(2):"), namespace)  # two reads instead of for ever

    created = [e["id"] for e in stream_entries(cluster.redis_url) if e["type"] == "message.created"]
    assert handled == created and message["_id"] in {e["message_id"] for e in stream_entries(cluster.redis_url)}
    with redis.Redis.from_url(cluster.redis_url, decode_responses=True) as admin:
        assert admin.xpending(STREAM, "daily-tasks")["pending"] == 0


@pytest.mark.parametrize(
    ("redis_url", "args", "expected"),
    [
        (None, (), "chatserver events: set REDIS_URL; the stream lives in Redis"),
        ("redis://127.0.0.1:1/0", ("--from", "0"), "chatserver events: Error 111 connecting to 127.0.0.1:1"),
    ],
)
def test_chatserver_events_mistakes_are_one_line_and_a_failure_exit(
    redis_url: str | None, args: tuple[str, ...], expected: str
) -> None:
    finished = chatserver_events(redis_url, *args)
    assert finished.returncode == 1 and finished.stdout == ""
    assert finished.stderr.startswith(expected) and len(finished.stderr.splitlines()) == 1, finished.stderr


def test_chatserver_events_ends_quietly_when_its_reader_goes_away(cluster: Cluster) -> None:
    """``chatserver events --from 0 | head -1``: no broken-pipe traceback, no error."""
    with redis.Redis.from_url(cluster.redis_url) as admin:
        for n in range(200):
            admin.xadd(STREAM, {"data": json.dumps({"id": f"filler-{n}", "message_id": "none", "type": "x"})})
    env = clean_env(**suite_env(REDIS_URL=cluster.redis_url))
    command = [sys.executable, "-m", "chatserver", "events", "--from", "0"]
    with subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as tail:
        assert tail.stdout is not None and tail.stderr is not None
        assert json.loads(tail.stdout.readline())["id"]
        tail.stdout.close()
        assert tail.wait(timeout=30) == 0
        assert tail.stderr.read() == b""


def test_chatserver_events_refuses_a_malformed_start_id_in_one_line(cluster: Cluster) -> None:
    finished = chatserver_events(cluster.redis_url, "--from", "yesterday")
    assert (finished.returncode, finished.stderr) == (1, "chatserver events: Invalid stream ID specified as stream "
                                                         "command argument\n")  # fmt: skip


async def test_a_message_stored_while_redis_is_down_gets_its_event_after_it_is_back_though_its_replica_died(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    client = await on(cluster, 0, token(new_id(), name="Stubborn"))
    cluster.stop_redis()
    try:
        await client.send({"event": "globalMessage", "data": {"content": "while redis is down"}})
        refused = await client.recv()
        [error] = refused["error"]
        assert (error["reason"], error["additional"].keys()) == ("NOT_AVAILABLE", {"message_id"})
        cluster.kill_replica(0)  # the replica that holds the event dies with it unsent
    finally:
        cluster.start_redis()
    try:
        [event] = await events_about(cluster.redis_url, {error["additional"]["message_id"]}, 1)
        assert event["type"] == "message.created"
    finally:
        cluster.start_replica(0)


@pytest.fixture
def embedding_app(tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    """``tests/support/event_hook_app.py`` under uvicorn: the embedded default with an ``on_event`` hook."""
    events_file = tmp_path / "events.jsonl"
    command = [sys.executable, "-m", "uvicorn", "tests.support.event_hook_app:app"]
    server = ServerProcess(env={"EVENTS_FILE": str(events_file)}, command=command).start(tmp_path)
    yield server, events_file
    server.stop()


async def test_embedded_mode_hands_every_event_to_the_on_event_hook(
    embedding_app: tuple[ServerProcess, Path], new_id: Callable[[], str]
) -> None:
    server, events_file = embedding_app
    player = new_id()
    client = await Client.connect(server, token(player, name="Solo"))
    message = await client.post("global", "only here", feeling="calm")
    await client.react("global", message["_id"], "👍")

    deadline = time.monotonic() + WAIT_SECONDS
    while (not events_file.exists() or len(events_file.read_text().splitlines()) < 2) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    room = {"chat": "global", "clan_id": None, "player_id": player, "message_id": message["_id"]}
    assert [without_id_and_at(e) for e in events] == [
        {"type": "message.created", **room, "feeling": "calm"},
        {"type": "reaction.set", **room, "emoji": "👍"},
    ]


async def test_on_a_redis_cluster_every_change_is_in_the_stream_and_chatserver_events_reads_it(
    tmp_path: Path, mongo_standin_url: str, new_id: Callable[[], str]
) -> None:
    env = shared_store_env(mongo_standin_url)
    with (
        LocalRedisCluster(3, workdir=tmp_path / "redis") as redis_cluster,
        Cluster(2, workdir=tmp_path / "chat", redis_url=redis_cluster.url, env=env) as cluster,
    ):
        player = new_id()
        poster = await on(cluster, 0, token(player, name="Sharded"))
        reactor = await on(cluster, 1, token(new_id(), name="Other"))
        message = await poster.post("global", "on a cluster", responseType="Online")
        await reactor.recv()
        assert (await reactor.react("global", message["_id"], "👍"))["event"] == "newReaction"

        admin = redis_cluster.client()
        try:
            records = admin.xrange(STREAM) or []
            entries = [json.loads(fields[b"data"]) for _, fields in records if fields]
        finally:
            admin.close()
        assert [(e["type"], e["message_id"]) for e in entries] == [
            ("message.created", message["_id"]), ("reaction.set", message["_id"])
        ]  # fmt: skip
        printed = chatserver_events(redis_cluster.url, "--group", "tasks", "--from", "0", "--count", "2")
        assert (printed.returncode, printed.stderr) == (0, "")
        assert [json.loads(line) for line in printed.stdout.splitlines()] == entries


# --- At least once, measured: replicas SIGKILLed in a loop while clients post and react --------------------


class Poster:
    """Posts and reacts to its own message through whichever replica is up, reconnecting after each kill."""

    def __init__(self, cluster: Cluster, bearer: str, player_id: str, chat: str, first_replica: int) -> None:
        self.cluster, self.bearer, self.player_id, self.chat = cluster, bearer, player_id, chat
        self.replica = first_replica
        self.sent = 0
        self.reconnects = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                client = await on(self.cluster, self.replica, self.bearer)
                while not stop.is_set():
                    await self._one_round(client)
            except (ConnectionClosed, OSError, TimeoutError, AssertionError):
                self.reconnects += 1
                self.replica = (self.replica + 1) % len(self.cluster.replicas)
                await asyncio.sleep(0.05)

    async def _one_round(self, client: Client) -> None:
        await client.send({"event": f"{self.chat}Message", "data": {"content": f"post {self.sent}"}})
        self.sent += 1
        mine = await self._next(client, "newMessage")
        if mine is None:
            return
        emoji = ["👍", "🔥", None][self.sent % 3]
        await client.send({"event": f"{self.chat}MessageReaction", "data": {"message_id": mine, "emoji": emoji}})
        await self._next(client, "newReaction", mine)

    async def _next(self, client: Client, event: str, message_id: str | None = None) -> str | None:
        """The id in the broadcast this player caused (its own message, or the one it reacted to); ``None`` after
        an error frame."""
        while True:
            frame = await client.recv()
            if "error" in frame:
                return None
            message = frame["message"]
            mine = message["_id"] == message_id if message_id else message["sender"]["_id"] == self.player_id
            if frame["event"] == event and mine:
                return str(message["_id"])


async def test_with_replicas_killed_in_a_loop_every_stored_change_has_its_event_and_none_is_invented(
    tmp_path: Path, mongo_standin_url: str, new_id: Callable[[], str]
) -> None:
    env = shared_store_env(mongo_standin_url, CHAT_EVENTS_REPAIR_SECONDS="3")
    clan = new_id()
    with Cluster(3, workdir=tmp_path / "kill-loop", env=env) as cluster:
        players = [new_id() for _ in range(4)]
        posters = [
            Poster(cluster, token(p, name=f"P{n}", clan_id=clan), p, "clan" if n < 2 else "global", n % 3)
            for n, p in enumerate(players)
        ]
        stop = asyncio.Event()
        running = [asyncio.create_task(poster.run(stop)) for poster in posters]
        for round_number in range(6):
            await asyncio.sleep(0.7)
            cluster.kill_replica(round_number % 3)
            await asyncio.sleep(0.2)
            cluster.start_replica(round_number % 3)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*running)

        with pymongo.MongoClient[dict[str, Any]](mongo_standin_url) as mongo:
            messages = mongo[env["MONGODB_DB"]].ChatMessage
            deadline = time.monotonic() + WAIT_SECONDS
            while messages.count_documents(WAITING) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            assert list(messages.find(WAITING)) == [], "the repair sweep emptied every outbox"
            stored = {str(doc["_id"]): doc for doc in messages.find()}
        events = stream_entries(cluster.redis_url)
        logs = "".join(replica.log_path.read_text() for replica in cluster.replicas)
        repaired = sum(int(n) for n in re.findall(r"event repair appended (\d+)", logs))

    assert sum(poster.sent for poster in posters) > 20 and sum(poster.reconnects for poster in posters) >= 4
    by_id: dict[str, dict[str, Any]] = {}
    for event in events:
        assert by_id.setdefault(event["id"], event) == event, "a repeat carries the same id and the same event"
    unique = list(by_id.values())
    assert {e["message_id"] for e in unique} <= set(stored), "no event names a message the store does not hold"
    created = [e["message_id"] for e in unique if e["type"] == "message.created"]
    assert sorted(created) == sorted(stored), f"every stored message has exactly one creation ({repaired} repairs)"
    last_reaction: dict[tuple[str, str], dict[str, Any]] = {}
    for event in unique:
        if event["type"].startswith("reaction."):
            last_reaction[(event["message_id"], event["player_id"])] = event
    for message_id, document in stored.items():
        for reaction in document["reactions"]:
            event = last_reaction[(message_id, reaction["sender_id"])]
            assert (event["type"], event.get("emoji")) == ("reaction.set", reaction["emoji"])
    for (message_id, player_id), event in last_reaction.items():
        if event["type"] == "reaction.removed":
            assert player_id not in [r["sender_id"] for r in stored[message_id]["reactions"]]


async def test_a_report_and_a_mute_are_events_with_who_did_them(cluster: Cluster, new_id: Callable[[], str]) -> None:
    sender, reporter = new_id(), new_id()
    message = await (await on(cluster, 0, token(sender))).post("global", "rude words")
    reporting = await on(cluster, 1, token(reporter))
    await reporting.send({"event": "globalMessageReport", "data": {"message_id": message["_id"], "reason": "rude"}})
    [created, reported] = await events_about(cluster.redis_url, {message["_id"]}, 2)
    assert without_id_and_at(reported) == {
        "type": "message.reported", "chat": "global", "clan_id": None, "player_id": reporter,
        "message_id": message["_id"], "sender_id": sender, "reason": "rude",
    }  # fmt: skip
    moderator = token(new_id(), roles=["moderator"])
    muted = httpx.post(
        f"{cluster.replicas[2].url}/chat/moderation/mutes",
        json={"player_id": sender, "minutes": 5, "reason": "rude"},
        headers={"Authorization": f"Bearer {moderator}"},
        timeout=5,
    )
    assert muted.status_code == 201, muted.text
    deadline = time.monotonic() + WAIT_SECONDS
    while not (mutes := [e for e in stream_entries(cluster.redis_url) if e["type"] == "player.muted"]):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert mutes[-1]["player_id"] == sender and mutes[-1]["until"] == muted.json()["until"]
    assert mutes[-1]["reason"] == "rude" and mutes[-1]["moderator"] != sender
