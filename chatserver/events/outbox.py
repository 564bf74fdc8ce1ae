"""At least once: events leave the store's outbox for the sink with each change, and by a repair sweep.

A change and its event are one write in the store (``EventDraft`` in the message's outbox). The worker
appends the event, then broadcasts, then clears the entry: as a client sees a change only after its
event is on the stream, whatever anyone does in answer to it comes later in the stream (the stream is
in causal order, per room and across rooms). If the worker dies in between, or the
sink is down, the entry stays; every ``CHAT_EVENTS_REPAIR_SECONDS / 3`` one worker (a Redis lock picks
it) appends every entry older than ``CHAT_EVENTS_REPAIR_SECONDS``, oldest first, then clears them. An
event appended twice (the sweep raced a slow worker, or a worker died after the append and before the
clear) carries the same ``id`` both times: consumers skip ids they have seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from chatserver import metrics
from chatserver.events.model import message_event
from chatserver.events.sinks import EventSink, EventsUnavailable
from chatserver.store.base import MessageStore, PendingEvent, StoredMessage, StoreUnavailable

log = logging.getLogger(__name__)

REPAIR_BATCH = 2000  # messages a sweep reads: after a long Redis outage, 2000 every third of the repair delay
CLEARS_AT_ONCE = 100  # outbox clears a sweep sends together, so a full batch takes a few round trips


class EventOutbox:
    """Moves this worker's events to the sink and repairs what any worker left behind."""

    def __init__(self, store: MessageStore, sink: EventSink, repair_after_seconds: float) -> None:
        self._store = store
        self._sink = sink
        self._repair_after = timedelta(seconds=repair_after_seconds)
        self._interval = max(repair_after_seconds / 3, 1.0)
        self._sweeper: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def sending(self, stored: StoredMessage, event_id: str) -> AsyncIterator[None]:
        """Append the event ``event_id`` of a change just stored, run the block (the broadcast), clear it.

        Never raises for the event: if the append fails, the entry stays for the repair sweep.
        """
        due = [(stored, p) for p in stored.pending if p.draft.id == event_id]
        appended = await self._append(due, "appended")
        try:
            yield
        finally:
            if appended:
                await self._clear(due)

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._repair_forever(), name="event-repair")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self._sink.close()

    async def repair(self) -> int:
        """One sweep: append the entries older than the repair delay, oldest first; how many were sent."""
        if not await self._sink.claim_repair(self._interval):
            return 0
        older_than = datetime.now(UTC) - self._repair_after
        try:
            messages = await self._store.pending_events(older_than, REPAIR_BATCH)
        except StoreUnavailable:
            log.warning("event repair could not read the store; trying again later")
            return 0
        due = sorted(
            ((m, p) for m in messages for p in m.pending if p.at < older_than), key=lambda pair: _order(pair[1])
        )
        if not due or not await self._append(due, "repaired"):
            return 0
        await self._clear(due)
        log.info("event repair appended %d events left in outboxes", len(due))
        return len(due)

    async def _append(self, due: list[tuple[StoredMessage, PendingEvent]], outcome: str) -> bool:
        if not due:
            return False
        try:
            await self._sink.append([message_event(message, pending) for message, pending in due])
        except EventsUnavailable as error:
            log.warning("events stay in the outbox for the repair sweep: %s", error)
            metrics.EVENTS.labels("deferred").inc(len(due))
            return False
        metrics.EVENTS.labels(outcome).inc(len(due))
        return True

    async def _clear(self, due: list[tuple[StoredMessage, PendingEvent]]) -> None:
        """Take appended events out of their outboxes; if that fails the sweep appends them again (same ids)."""
        grouped = list(_by_message(due).items())
        try:
            if len(grouped) == 1:  # a change just sent: no task for it, so a worker that is not waiting goes on
                await self._store.events_sent(*grouped[0])
                return
            for start in range(0, len(grouped), CLEARS_AT_ONCE):
                chunk = grouped[start : start + CLEARS_AT_ONCE]
                await asyncio.gather(*(self._store.events_sent(message_id, ids) for message_id, ids in chunk))
        except StoreUnavailable as error:
            log.warning("appended events stay in the outbox and will be appended again: %s", error)

    async def _repair_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.repair()
            except Exception:  # the sweep must outlive any one bad round
                log.exception("event repair failed")


def _order(pending: PendingEvent) -> tuple[datetime, str]:
    return pending.at, pending.draft.id


def _by_message(due: list[tuple[StoredMessage, PendingEvent]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for message, pending in due:
        grouped.setdefault(message.id, []).append(pending.draft.id)
    return grouped
