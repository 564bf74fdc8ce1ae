"""The worker's parts, chosen from settings and started and stopped in one place.

``Services.build`` picks each backend (memory or MongoDB store, in-process or Redis broker, claims
or database players) and ``start``/``stop`` are the whole lifecycle, in order.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from chatserver.broker.base import Broker
from chatserver.broker.memory import MemoryBroker
from chatserver.chat import ChatService
from chatserver.clan_ledger import ClanLedger, MemoryClanLedger, RedisClanLedger
from chatserver.connection import CLOSE_FRAME_SECONDS
from chatserver.delivery import Delivery
from chatserver.events.outbox import EventOutbox
from chatserver.events.sinks import EventHook, EventSink, InProcessEvents
from chatserver.expiry import TokenExpiries
from chatserver.hub import Hub
from chatserver.looplag import LoopLag
from chatserver.membership import Membership
from chatserver.moderation.audit import Audit
from chatserver.moderation.mutes import MemoryMutes, MuteRegistry
from chatserver.moderation.reports import MemoryReports, ReportLog
from chatserver.moderation.service import ModerationService
from chatserver.players import ClaimsDirectory, PlayerDirectory
from chatserver.protocol.vocabulary import CloseCode, Dialect
from chatserver.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from chatserver.settings import HMAC_MIN_BYTES, Settings, mask_url
from chatserver.store.base import MessageStore, StoreUnavailable
from chatserver.store.memory import MemoryStore
from chatserver.wordfilter.blocklist import Blocklist

log = logging.getLogger(__name__)

GAME_CLOSE_SECONDS = 1.0
"""Game sockets are closed this long before the polite part of a drain ends, as late as their frames allow."""
BROKER_FIRST_ANSWER_SECONDS = 2.0


class StartupFailed(Exception):
    """A backend the worker cannot serve without did not answer at start-up; the message says which and why."""


@dataclass
class Services:
    settings: Settings
    store: MessageStore
    broker: Broker
    delivery: Delivery
    players: PlayerDirectory
    hub: Hub
    chat: ChatService
    membership: Membership
    limiter: RateLimiter
    ledger: ClanLedger | None
    blocklist: Blocklist
    mutes: MuteRegistry
    reports: ReportLog
    moderation: ModerationService
    outbox: EventOutbox
    expiries: TokenExpiries = field(default_factory=TokenExpiries)
    loop_lag: LoopLag = field(default_factory=LoopLag)
    draining: bool = False

    @classmethod
    def build(cls, settings: Settings, event_hooks: Sequence[EventHook] = ()) -> Services:
        """Publishes go to the broker; what it receives reaches the hub through ``Delivery``, which repairs losses."""
        store = _store_for(settings)
        broker = broker_for(settings)
        ledger = _ledger_for(settings)
        players = _players_for(settings, ledger)
        limiter = _limiter_for(settings)
        blocklist = Blocklist(settings.blocklist_file, settings.blocklist_action)
        mutes, reports = _mutes_for(settings), _reports_for(settings)
        events = _events_for(settings, event_hooks)
        audit = Audit(events)
        outbox = EventOutbox(store, events, settings.events_repair_seconds)
        chat = ChatService(settings, store, broker, players, limiter, blocklist, mutes, reports, audit, outbox)
        delivery = Delivery(broker, chat)
        hub = Hub(delivery, settings.max_sockets_per_player)
        return cls(
            settings=settings,
            store=store,
            broker=broker,
            delivery=delivery,
            players=players,
            hub=hub,
            chat=chat,
            membership=Membership(broker, hub, players, ledger),
            limiter=limiter,
            ledger=ledger,
            blocklist=blocklist,
            mutes=mutes,
            reports=reports,
            moderation=ModerationService(chat, mutes, reports, audit),
            outbox=outbox,
        )

    async def start(self) -> None:
        """Open the store, then the broker with the receive side wired to the hub; warn loudly about unsafe defaults."""
        for deprecation in self.settings.deprecations:
            log.warning(deprecation)
        if self.settings.uses_dev_secret:
            log.warning("JWT_SECRET is not set: using the public development secret; never do this in production")
        elif len(self.settings.jwt_secret.encode()) < HMAC_MIN_BYTES[self.settings.jwt_algorithm]:
            log.warning(
                "JWT_SECRET is %d bytes: production refuses fewer than %d for %s",
                len(self.settings.jwt_secret.encode()),
                HMAC_MIN_BYTES[self.settings.jwt_algorithm],
                self.settings.jwt_algorithm,
            )
        try:
            await self.store.open()
        except StoreUnavailable as error:
            where = mask_url(self.settings.mongodb_url or "")
            raise StartupFailed(f"cannot start: MongoDB at {where} did not answer ({_first_clause(error)})") from None
        if not self.store.durable:
            log.warning(
                "MONGODB_URL is not set: chat history is kept in this process's memory only and is NOT DURABLE "
                "(lost on restart, at most %d messages)",
                self.settings.memory_max_messages,
            )
        await self.blocklist.start()
        await self.delivery.start(self.hub.deliver, self.membership.apply)
        await self.outbox.start()
        self.loop_lag.start()
        if not await self._broker_answers(BROKER_FIRST_ANSWER_SECONDS):
            log.error(
                "Redis at %s does not answer: serving anyway with /readyz 503 and live delivery off; "
                "the subscriber reconnects with backoff (logged at each attempt) until it does",
                mask_url(self.settings.redis_url or ""),
            )

    async def _broker_answers(self, seconds: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not await self.broker.ping():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def stop(self) -> None:
        self.loop_lag.stop()
        await self.outbox.stop()
        await self.delivery.stop()
        await self.blocklist.stop()
        await self.limiter.close()
        if self.ledger is not None:
            await self.ledger.close()
        await self.mutes.close()
        await self.reports.close()
        await self.store.close()

    async def drain(self, seconds: float) -> None:
        """Stop taking sockets, send each one its queued frames and close code 1012, wait for them to go.

        Wiki sockets are closed first: their clients reconnect elsewhere at once. Game sockets keep
        live chat until just before the polite closes end, since the shipped client does not
        reconnect (its player has no live chat until the app resumes). Sockets still open when the
        time for polite closes is up are cut, which aborts them ``CLOSE_FRAME_SECONDS`` later; all of
        it ends within ``seconds``.
        """
        self.draining = True
        log.info("draining: closing %d sockets with 1012", self.hub.connection_count)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        polite_end = deadline - CLOSE_FRAME_SECONDS - 0.5
        self.hub.finish_all(CloseCode.SERVICE_RESTART, Dialect.WIKI)
        if self.hub.count_of(Dialect.GAME):
            await asyncio.sleep(max(polite_end - GAME_CLOSE_SECONDS - loop.time(), 0))
            self.hub.finish_all(CloseCode.SERVICE_RESTART, Dialect.GAME)
        await self._until_no_sockets(polite_end)
        if self.hub.connection_count:
            log.warning("drain time is up: cutting %d sockets", self.hub.connection_count)
            self.hub.cut_all(CloseCode.SERVICE_RESTART)
            await self._until_no_sockets(deadline)

    async def _until_no_sockets(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while self.hub.connection_count and loop.time() < deadline:
            await asyncio.sleep(0.05)

    async def ready(self) -> dict[str, bool]:
        """What ``/readyz`` reports: each backend answers, and the worker is not draining."""
        return {"store": await self.store.ping(), "broker": await self.broker.ping(), "accepting": not self.draining}


def _first_clause(error: Exception) -> str:
    """PyMongo's message without its timeouts and topology dump (``..., Timeout: 3.0s, Topology Description: ...``)."""
    first = str(error).split(", Timeout:")[0].removeprefix("MongoDB: ")
    return re.sub(r" \(configured timeouts: [^)]*\)", "", first)


def _store_for(settings: Settings) -> MessageStore:
    if settings.mongodb_url is None:
        return MemoryStore(settings.memory_max_messages, settings.retention)
    from chatserver.store.mongo import MongoStore

    return MongoStore(settings.mongodb_url, settings.mongodb_db, settings.retention)


def _events_for(settings: Settings, hooks: Sequence[EventHook]) -> EventSink:
    """The Redis Stream when ``REDIS_URL`` is set, else the in-process hooks (embedded)."""
    if settings.redis_url is None:
        return InProcessEvents(hooks)
    if hooks:
        log.warning("event hooks are for embedded mode: with REDIS_URL, events go to the stream only")
    from chatserver.events.sinks import RedisEventStream

    return RedisEventStream(settings.redis_url, settings.redis_prefix, settings.events_maxlen)


def broker_for(settings: Settings) -> Broker:
    """Redis when ``REDIS_URL`` is set (many replicas), else the in-process broker (one process)."""
    if settings.redis_url is None:
        return MemoryBroker()
    from chatserver.broker.redis import RedisBroker

    return RedisBroker(settings.redis_url, settings.redis_prefix)


def _limiter_for(settings: Settings) -> RateLimiter:
    """Buckets shared by every replica through Redis, or this process's own when embedded."""
    if settings.redis_url is None:
        return MemoryRateLimiter()
    return RedisRateLimiter(settings.redis_url, settings.redis_prefix)


def _mutes_for(settings: Settings) -> MuteRegistry:
    """Mutes every replica reads through Redis, or this process's own when embedded."""
    if settings.redis_url is None:
        return MemoryMutes()
    from chatserver.moderation.mutes import RedisMutes

    return RedisMutes(settings.redis_url, settings.redis_prefix)


def _reports_for(settings: Settings) -> ReportLog:
    if settings.redis_url is None:
        return MemoryReports()
    from chatserver.moderation.reports import RedisReports

    return RedisReports(settings.redis_url, settings.redis_prefix)


def _ledger_for(settings: Settings) -> ClanLedger | None:
    """Claims mode remembers membership changes (in Redis when replicas share it); the game database needs none."""
    if settings.players_from_database:
        return None
    if settings.redis_url is None:
        return MemoryClanLedger(settings.clan_ledger_seconds)
    return RedisClanLedger(settings.redis_url, settings.redis_prefix, settings.clan_ledger_seconds)


def _players_for(settings: Settings, ledger: ClanLedger | None) -> PlayerDirectory:
    if ledger is not None:
        return ClaimsDirectory(ledger)
    from chatserver.players.mongo import MongoPlayerDirectory

    return MongoPlayerDirectory()
