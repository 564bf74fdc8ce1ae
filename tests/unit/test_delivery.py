"""Gap repair in this process: a broker that loses frames, a store that has them, and what reaches the hub.

The pieces are the real ones (``MemoryStore``, ``ChatService.changes``, ``Delivery``) except the broker,
which loses every third frame of a room the way Redis drops frames for a subscriber that fell behind.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from chatserver.broker.base import RoomFrame
from chatserver.chat import ChatService
from chatserver.clan_ledger import MemoryClanLedger
from chatserver.delivery import Delivery
from chatserver.events.outbox import EventOutbox
from chatserver.events.sinks import InProcessEvents
from chatserver.frames import iso_millis
from chatserver.moderation.audit import Audit
from chatserver.moderation.mutes import MemoryMutes
from chatserver.moderation.reports import MemoryReports
from chatserver.players import ClaimsDirectory
from chatserver.protocol import MembershipAction, MembershipChange
from chatserver.protocol.vocabulary import RoomKey
from chatserver.ratelimit import MemoryRateLimiter
from chatserver.settings import Settings
from chatserver.store.base import NewMessage, ReactionChange, StoredMessage
from chatserver.store.memory import MemoryStore
from chatserver.wordfilter.blocklist import Blocklist
from tests.broker.doubles import SeqSkippingBroker

ROOM = RoomKey.clan("a")
WAIT_SECONDS = 5.0


@dataclass
class Worker:
    """One worker's receive side: the broker, the store it repairs from, and what its hub was handed."""

    broker: SeqSkippingBroker
    store: MemoryStore
    delivery: Delivery
    to_hub: list[tuple[str, RoomFrame]] = field(default_factory=list)
    memberships: list[MembershipChange] = field(default_factory=list)

    async def post(self, content: str) -> StoredMessage:
        """Store a message, then publish its frame: what ``ChatService.post`` does after validation."""
        stored = await self.store.add(NewMessage(ROOM, "p1", "Poster", None, content, None))
        await self.broker.publish(ROOM.name, frame_of(stored))
        return stored

    async def hub_received(self, count: int) -> list[str]:
        """The message ids handed to the hub, once ``count`` frames have arrived."""
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while len(self.to_hub) < count:
            assert asyncio.get_running_loop().time() < deadline, f"only {len(self.to_hub)} of {count} frames arrived"
            await asyncio.sleep(0.01)
        return [frame.message_id for _, frame in self.to_hub]


def frame_of(stored: StoredMessage) -> RoomFrame:
    return RoomFrame(json.dumps({"content": stored.content}), stored.id, iso_millis(stored.updated_at), time.time())


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    """A worker whose broker loses nothing."""
    async for running in started(SeqSkippingBroker(every=10**9)):
        yield running


@pytest.fixture
async def lossy_worker() -> AsyncIterator[Worker]:
    """A worker whose broker loses every third frame of a room."""
    async for running in started(SeqSkippingBroker(every=3)):
        yield running


async def started(broker: SeqSkippingBroker) -> AsyncIterator[Worker]:
    settings = Settings()
    store = MemoryStore(1000)
    players = ClaimsDirectory(MemoryClanLedger(settings.clan_ledger_seconds))
    events = InProcessEvents()
    chat = ChatService(
        settings,
        store,
        broker,
        players,
        MemoryRateLimiter(),
        Blocklist(settings.blocklist_file, settings.blocklist_action),
        MemoryMutes(),
        MemoryReports(),
        Audit(events),
        EventOutbox(store, events, settings.events_repair_seconds),
    )
    running = Worker(broker, store, Delivery(broker, chat))

    async def on_membership(change: MembershipChange) -> None:
        running.memberships.append(change)

    await running.delivery.start(lambda room, frame: running.to_hub.append((room, frame)), on_membership)
    await running.delivery.subscribe(ROOM.name)
    yield running
    await running.delivery.stop()


async def test_frames_lost_on_the_way_reach_the_hub_from_the_store_once_each_in_order(lossy_worker: Worker) -> None:
    posted = [await lossy_worker.post(f"m{n}") for n in range(10)]
    posted.append(await lossy_worker.post("last"))  # a lost frame shows only when a later one arrives
    assert await lossy_worker.hub_received(11) == [stored.id for stored in posted]
    await lossy_worker.delivery.stop()  # waits for catch-ups still reading: nothing more arrived
    assert len(lossy_worker.to_hub) == 11


async def test_a_version_already_delivered_is_not_handed_over_again(worker: Worker) -> None:
    stored = await worker.post("once")
    await worker.broker.publish(ROOM.name, frame_of(stored))  # published again after a refused publish
    second = await worker.post("twice")
    assert await worker.hub_received(2) == [stored.id, second.id]


async def test_a_newer_version_of_a_message_is_handed_over(worker: Worker) -> None:
    stored = await worker.post("react to me")
    reacted = await worker.store.react(ROOM, ReactionChange(stored.id, "p2", "Reactor", "👍"))
    assert reacted is not None
    await worker.broker.publish(ROOM.name, frame_of(reacted))
    assert await worker.hub_received(2) == [stored.id, stored.id]
    assert worker.to_hub[1][1].updated_at == iso_millis(reacted.updated_at)


async def test_a_resubscription_catches_every_followed_room_up_from_the_store(worker: Worker) -> None:
    stored = await worker.store.add(NewMessage(ROOM, "p1", "Poster", None, "while unsubscribed", None))
    worker.delivery.handle_resubscribed()
    assert await worker.hub_received(1) == [stored.id]
    assert json.loads(worker.to_hub[0][1].text)["message"]["content"] == "while unsubscribed"


async def test_a_room_no_longer_followed_gets_nothing(worker: Worker) -> None:
    await worker.delivery.unsubscribe(ROOM.name)
    await worker.delivery.subscribe("global")
    await worker.post("nobody here")
    stored = await worker.store.add(NewMessage(RoomKey.global_room(), "p1", "Poster", None, "hello", None))
    await worker.broker.publish("global", frame_of(stored))
    assert await worker.hub_received(1) == [stored.id]
    assert worker.to_hub[0][0] == "global"


async def test_membership_changes_pass_through_to_the_membership_handler(worker: Worker) -> None:
    change = MembershipChange(player_id="p1", action=MembershipAction.LEAVE, clan_id="a")
    await worker.broker.publish_membership(change)
    assert worker.memberships == [change]
