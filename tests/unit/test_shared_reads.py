"""Shared resume reads in this process: callers of one room share a query and each gets what it would alone.

The store behind is the real ``MemoryStore``; a gate holds its reads in flight, as a slow MongoDB would.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from chatserver.protocol.vocabulary import RoomKey
from chatserver.store.base import ChangeSlice, NewMessage, StoreUnavailable
from chatserver.store.memory import MemoryStore
from chatserver.store.shared_reads import SharedChangeReads

ROOM = RoomKey.clan("a")
OTHER = RoomKey.clan("b")


class GatedReads:
    """``MemoryStore.changes_since`` that waits for ``open`` and logs each read's room and ``since``."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.calls: list[tuple[RoomKey, datetime, int]] = []
        self.open = asyncio.Event()
        self.fail = False

    async def read(self, room: RoomKey, since: datetime, limit: int) -> ChangeSlice:
        self.calls.append((room, since, limit))
        await self.open.wait()
        if self.fail:
            raise StoreUnavailable("MongoDB: down")
        return await self.store.changes_since(room, since, limit)


async def post(store: MemoryStore, room: RoomKey, count: int) -> list[datetime]:
    stamps = []
    for number in range(count):
        stored = await store.add(NewMessage(room, "p1", "Ann", None, f"message {number}", None))
        stamps.append(stored.updated_at)
    return stamps


def ids(found: ChangeSlice) -> list[str]:
    return [message.content for message in found.messages]


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(max_messages=1000)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_callers_during_a_read_share_the_next_one_and_each_gets_its_own_changes(store: MemoryStore) -> None:
    stamps = await post(store, ROOM, 6)
    gated = GatedReads(store)
    shared = SharedChangeReads(gated.read)
    first = asyncio.create_task(shared.changes_since(ROOM, stamps[0], 300))
    await settle()
    later = [asyncio.create_task(shared.changes_since(ROOM, stamps[i], 300)) for i in (3, 1, 4)]
    await settle()
    gated.open.set()
    answers = [await task for task in (first, *later)]
    assert [ids(a) for a in answers] == [
        [f"message {n}" for n in range(1, 6)],
        ["message 4", "message 5"],
        ["message 2", "message 3", "message 4", "message 5"],
        ["message 5"],
    ]
    assert all(a.complete for a in answers)
    assert [(room, since) for room, since, _ in gated.calls] == [(ROOM, stamps[0]), (ROOM, stamps[1])]


async def test_a_change_stored_while_a_read_is_in_flight_reaches_the_caller_who_asked_after_it(
    store: MemoryStore,
) -> None:
    stamps = await post(store, ROOM, 1)
    since = stamps[0] - timedelta(seconds=1)
    gated = GatedReads(store)
    shared = SharedChangeReads(gated.read)
    early = asyncio.create_task(shared.changes_since(ROOM, since, 300))
    await settle()
    await store.add(NewMessage(ROOM, "p2", "Bo", None, "stored meanwhile", None))
    late = asyncio.create_task(shared.changes_since(ROOM, since, 300))
    await settle()
    gated.open.set()
    await early
    assert ids(await late) == ["message 0", "stored meanwhile"]
    assert len(gated.calls) == 2  # the later caller did not take the read that began before it asked


async def test_rooms_are_read_apart(store: MemoryStore) -> None:
    await post(store, ROOM, 2)
    await post(store, OTHER, 1)
    gated = GatedReads(store)
    gated.open.set()
    shared = SharedChangeReads(gated.read)
    since = datetime.fromtimestamp(0).astimezone()
    a, b = await asyncio.gather(shared.changes_since(ROOM, since, 300), shared.changes_since(OTHER, since, 300))
    assert (ids(a), ids(b)) == (["message 0", "message 1"], ["message 0"])


async def test_a_caller_the_shared_read_cannot_answer_within_its_limit_reads_alone(store: MemoryStore) -> None:
    stamps = await post(store, ROOM, 6)
    gated = GatedReads(store)
    shared = SharedChangeReads(gated.read)
    blocker = asyncio.create_task(shared.changes_since(ROOM, stamps[5], 2))
    await settle()
    # One read from stamps[0] with limit 2 keeps messages 4 and 5: enough for the caller since stamps[4],
    # not for the one since stamps[0], which reads alone and gets the same newest two, incomplete.
    early = asyncio.create_task(shared.changes_since(ROOM, stamps[0], 2))
    late = asyncio.create_task(shared.changes_since(ROOM, stamps[4], 2))
    await settle()
    gated.open.set()
    await blocker
    found_early, found_late = await early, await late
    assert (ids(found_early), found_early.complete) == (["message 4", "message 5"], False)
    assert (ids(found_late), found_late.complete) == (["message 5"], True)
    assert [since for _, since, _ in gated.calls] == [stamps[5], stamps[0], stamps[0]]


async def test_a_caller_beyond_the_shared_reads_limit_gets_the_newest_within_its_own(store: MemoryStore) -> None:
    stamps = await post(store, ROOM, 5)
    gated = GatedReads(store)
    shared = SharedChangeReads(gated.read)
    blocker = asyncio.create_task(shared.changes_since(ROOM, stamps[4], 300))
    await settle()
    wide = asyncio.create_task(shared.changes_since(ROOM, stamps[0], 300))
    narrow = asyncio.create_task(shared.changes_since(ROOM, stamps[0], 2))
    await settle()
    gated.open.set()
    await blocker
    assert (ids(await wide), (await wide).complete) == ([f"message {n}" for n in range(1, 5)], True)
    assert (ids(await narrow), (await narrow).complete) == (["message 3", "message 4"], False)
    assert len(gated.calls) == 2


async def test_a_store_failure_reaches_every_caller_of_the_read(store: MemoryStore) -> None:
    stamps = await post(store, ROOM, 2)
    gated = GatedReads(store)
    gated.fail = True
    shared = SharedChangeReads(gated.read)
    callers = [asyncio.create_task(shared.changes_since(ROOM, stamps[0], 300)) for _ in range(3)]
    await settle()
    gated.open.set()
    outcomes = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(outcome, StoreUnavailable) for outcome in outcomes)
    gated.fail = False
    assert ids(await shared.changes_since(ROOM, stamps[0], 300)) == ["message 1"]
