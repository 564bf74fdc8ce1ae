"""One contract for the mute registry and the report log, over this process's and Redis's (a real redis-server)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from chatserver.moderation.mutes import MemoryMutes, MuteRegistry, MutesUnavailable, RedisMutes, mute_until
from chatserver.moderation.reports import MemoryReports, RedisReports, ReportLog
from chatserver.protocol import ChatType
from chatserver.protocol.models import Mute, Report
from tests.support.harness import free_port

PREFIX = "mutes-suite:"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    workdir: Path = tmp_path_factory.mktemp("redis")
    program = shutil.which("redis-server") or "/usr/bin/redis-server"
    process = subprocess.Popen(
        [
            program,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            with redis.Redis.from_url(url) as client:
                client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(params=["memory", "redis"])
async def mutes(request: pytest.FixtureRequest) -> AsyncIterator[MuteRegistry]:
    if request.param == "memory":
        yield MemoryMutes()
        return
    url = request.getfixturevalue("redis_url")
    with redis.Redis.from_url(url) as admin:
        admin.delete(f"{PREFIX}mutes")
    registry = RedisMutes(url, PREFIX)
    yield registry
    await registry.close()


@pytest.fixture(params=["memory", "redis"])
async def reports(request: pytest.FixtureRequest) -> AsyncIterator[ReportLog]:
    if request.param == "memory":
        yield MemoryReports(kept=3)
        return
    url = request.getfixturevalue("redis_url")
    with redis.Redis.from_url(url) as admin:
        admin.delete(f"{PREFIX}reports")
    log = RedisReports(url, PREFIX, kept=3)
    yield log
    await log.close()


def mute(player_id: str, minutes: float = 10, moderator: str = "mod") -> Mute:
    return Mute(
        player_id=player_id, until=mute_until(0, time.time() + minutes * 60), reason="spam", moderator=moderator
    )


def report(n: int) -> Report:
    return Report(
        message_id=f"{n:024x}",
        chat=ChatType.GLOBAL,
        sender_id="sender",
        content=f"message {n}",
        reporter_id="reporter",
        at=f"2026-12-02T15:00:0{n}.000Z",
    )


async def test_a_mute_is_active_and_listed_until_lifted(mutes: MuteRegistry) -> None:
    alice = mute("alice")

    await mutes.mute(alice)

    assert await mutes.active("alice") == alice
    assert await mutes.active("bob") is None
    assert await mutes.all() == [alice]
    assert await mutes.unmute("alice") is True
    assert await mutes.unmute("alice") is False
    assert await mutes.active("alice") is None
    assert await mutes.all() == []


async def test_a_new_mute_replaces_the_old_and_the_list_is_soonest_to_end_first(mutes: MuteRegistry) -> None:
    await mutes.mute(mute("alice", minutes=60))
    await mutes.mute(mute("bob", minutes=30))
    shorter = mute("alice", minutes=5, moderator="another")

    await mutes.mute(shorter)

    assert await mutes.active("alice") == shorter
    assert [m.player_id for m in await mutes.all()] == ["alice", "bob"]


async def test_an_ended_mute_is_not_active_not_listed_and_not_liftable(mutes: MuteRegistry) -> None:
    await mutes.mute(mute("alice", minutes=-1))

    assert await mutes.active("alice") is None
    assert await mutes.all() == []
    assert await mutes.unmute("alice") is False


async def test_an_ended_mute_leaves_the_redis_hash_when_listed(redis_url: str) -> None:
    registry = RedisMutes(redis_url, PREFIX)
    try:
        await registry.mute(mute("gone", minutes=-1))
        await registry.all()
        with redis.Redis.from_url(redis_url) as admin:
            assert admin.hget(f"{PREFIX}mutes", "gone") is None
    finally:
        await registry.close()


async def test_without_redis_frames_go_through_and_mutes_are_refused() -> None:
    registry = RedisMutes(f"redis://127.0.0.1:{free_port()}/0", PREFIX)
    try:
        assert await registry.active("alice") is None
        with pytest.raises(MutesUnavailable):
            await registry.mute(mute("alice"))
        with pytest.raises(MutesUnavailable):
            await registry.all()
    finally:
        await registry.close()


async def test_reports_are_newest_first_and_only_the_newest_are_kept(reports: ReportLog) -> None:
    for n in range(5):
        await reports.add(report(n))

    assert [r.content for r in await reports.recent(10)] == ["message 4", "message 3", "message 2"]
    assert [r.content for r in await reports.recent(1)] == ["message 4"]
