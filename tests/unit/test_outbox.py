"""``EventOutbox`` in-process, on the memory store and the embedded hooks: what is sent when, and what a repair does.

The same flow over real processes, Redis and SIGKILL is ``test_events.py``; this tier checks the rules.
"""

from __future__ import annotations

import asyncio
from typing import Any

from chatserver.events.model import EventType, draft
from chatserver.events.outbox import EventOutbox
from chatserver.events.sinks import InProcessEvents
from chatserver.protocol.vocabulary import RoomKey
from chatserver.store.base import NewMessage, ReactionChange
from chatserver.store.memory import MemoryStore

GLOBAL = RoomKey.global_room()
ALICE = "665af23e5e982f0013aa0001"


class Recorder:
    """An ``on_event`` hook that records what it is given and fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.failing = False

    async def __call__(self, event: dict[str, Any]) -> None:
        if self.failing:
            raise RuntimeError("the consumer is down")
        self.seen.append(event)


async def past_the_stamps() -> None:
    """Let the clock pass the newest stamp: a burst of changes is stamped a millisecond apart, ahead of it."""
    await asyncio.sleep(0.02)


def new_message(content: str) -> NewMessage:
    return NewMessage(GLOBAL, ALICE, "Alice", None, content, None)


async def test_an_event_is_sent_with_its_change_and_leaves_the_outbox() -> None:
    store, hook = MemoryStore(100), Recorder()
    outbox = EventOutbox(store, InProcessEvents([hook]), repair_after_seconds=0)
    event = draft(EventType.MESSAGE_CREATED, ALICE, feeling="Happy")
    stored = await store.add(new_message("hi"), event)

    async with outbox.sending(stored, event.id):
        assert [e["id"] for e in hook.seen] == [event.id], "appended before the block (the broadcast) runs"

    assert hook.seen[0]["feeling"] == "Happy" and hook.seen[0]["message_id"] == stored.id
    assert (await store.page(GLOBAL, 10, 0)).messages[0].pending == ()
    assert await outbox.repair() == 0


async def test_an_event_a_hook_refused_is_offered_again_by_the_repair_with_the_same_id() -> None:
    store, hook = MemoryStore(100), Recorder()
    outbox = EventOutbox(store, InProcessEvents([hook]), repair_after_seconds=0)
    hook.failing = True
    event = draft(EventType.MESSAGE_CREATED, ALICE)
    stored = await store.add(new_message("hi"), event)
    async with outbox.sending(stored, event.id):
        pass
    assert hook.seen == [] and [p.draft.id for p in (await store.page(GLOBAL, 10, 0)).messages[0].pending] == [event.id]

    await past_the_stamps()
    assert await outbox.repair() == 0, "still failing: still waiting"
    hook.failing = False
    assert await outbox.repair() == 1
    assert [e["id"] for e in hook.seen] == [event.id]
    assert await outbox.repair() == 0


async def test_the_repair_sends_what_was_left_oldest_change_first_across_messages() -> None:
    store, hook = MemoryStore(100), Recorder()
    outbox = EventOutbox(store, InProcessEvents([hook]), repair_after_seconds=0)
    first = await store.add(new_message("first"), draft(EventType.MESSAGE_CREATED, ALICE))
    second = await store.add(new_message("second"), draft(EventType.MESSAGE_CREATED, ALICE))
    reaction = ReactionChange(first.id, ALICE, "Alice", "👍")
    await store.react(GLOBAL, reaction, draft(EventType.REACTION_SET, ALICE, emoji="👍"))
    await past_the_stamps()

    assert await outbox.repair() == 3
    assert [(e["type"], e["message_id"]) for e in hook.seen] == [
        ("message.created", first.id), ("message.created", second.id), ("reaction.set", first.id)
    ]  # fmt: skip
    assert [e["at"] for e in hook.seen] == sorted(e["at"] for e in hook.seen)


async def test_the_repair_leaves_events_younger_than_its_delay_to_their_worker() -> None:
    store, hook = MemoryStore(100), Recorder()
    outbox = EventOutbox(store, InProcessEvents([hook]), repair_after_seconds=60)
    await store.add(new_message("in flight"), draft(EventType.MESSAGE_CREATED, ALICE))
    assert await outbox.repair() == 0 and hook.seen == []
