"""MongoDB through Beanie: messages in the game's ``ChatMessage`` collection, shared with the old backend.

``open()`` makes PyMongo's asynchronous client and initialises Beanie with the two documents of
``documents.py``; Beanie creates the indexes declared there. Every driver error becomes
``StoreUnavailable`` (chained), and server selection gives up after ``SERVER_SELECTION_TIMEOUT_MS``
unless the URL says otherwise, so an outage fails a request in seconds instead of hanging it.

Reactions are one atomic ``find_one_and_update`` with an aggregation-pipeline update that applies the
game's rule (``base.apply_reaction``) inside the server: never read-modify-write, so concurrent
reactions from many players on one message, on any number of replicas, all survive. Edits and
deletions are single atomic updates too, matched on the sender (unless a moderator's) and on the
message being live; a deletion leaves a tombstone (``deletedAt``) that history and reactions skip and
resumes replay.

Resumes read a room's changes since a moment by ``(updatedAt, _id)``, through the
``(clan_id, updatedAt, _id)`` / ``(type, updatedAt, _id)`` indexes; concurrent reads of one room share
one query (``shared_reads.py``), since a reconnect storm asks for the same rooms thousands of times.

Every change writes its event into the document's ``outbox`` in the same atomic write (the insert, or
the reaction's update); ``events_sent`` takes it out once it is on the event stream. With a retention,
every query also asks for ``createdAt`` after the cutoff, so nothing past it is seen before MongoDB's
TTL monitor (about once a minute) deletes it; the TTL index is ``retention_index``'s.

History is newest first by ``(createdAt, _id)``. ``page`` skips; ``page_before`` is a keyset query on
that pair, which the ``(clan_id, createdAt, _id)`` / ``(type, createdAt, _id)`` indexes answer in order.

Beanie binds document classes to one database per process, so a process has one open ``MongoStore``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from beanie import SortDirection, init_beanie
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.errors import PyMongoError

from chatserver.protocol import ChatType
from chatserver.protocol.vocabulary import RoomKey
from chatserver.store.base import (
    ChangeClock,
    ChangeSlice,
    EventDraft,
    HistorySlice,
    MessageStore,
    MessageTarget,
    NewMessage,
    ReactionChange,
    StoredMessage,
    StoreUnavailable,
    retention_cutoff,
)
from chatserver.store.documents import (
    LEGACY_REACTION_SENDER,
    ChatMessageDocument,
    OutboxEntry,
    PlayerDocument,
    as_object_id,
    as_utc,
)
from chatserver.store.retention import ensure_retention_index
from chatserver.store.shared_reads import SharedChangeReads

LIVE = {"deletedAt": None}  # matches documents without the field: every message the old backend wrote
SERVER_SELECTION_TIMEOUT_MS = 3000
REACT_ATTEMPTS = 50
REACT_RETRY_JITTER_SECONDS = 0.005
NEWEST_FIRST = [("createdAt", SortDirection.DESCENDING), ("_id", SortDirection.DESCENDING)]
OLDEST_OUTBOX_FIRST = [("outbox.at", SortDirection.ASCENDING)]
LATEST_CHANGE_FIRST = [("updatedAt", SortDirection.DESCENDING), ("_id", SortDirection.DESCENDING)]


@contextmanager
def driver_errors_as_unavailable() -> Iterator[None]:
    """Turn any PyMongo error (refused, timed out, no primary...) into ``StoreUnavailable``."""
    try:
        yield
    except PyMongoError as error:
        raise StoreUnavailable(f"MongoDB: {error}") from error


def target_filter(target: MessageTarget) -> dict[str, Any] | None:
    """The query selecting the live message an edit or deletion is for; ``None`` when the id cannot be one."""
    message_id = as_object_id(target.message_id)
    if message_id is None:
        return None
    query: dict[str, Any] = {"_id": message_id, **LIVE}
    if target.room is not None:
        query.update(room_filter(target.room))
    if target.sender_id is not None:
        query["sender_id"] = as_object_id(target.sender_id) or target.sender_id
    return query


def room_filter(room: RoomKey) -> dict[str, Any]:
    """The query selecting exactly one room's messages."""
    if room.type is ChatType.GLOBAL:
        return {"type": ChatType.GLOBAL.value}
    return {"type": ChatType.CLAN.value, "clan_id": room.clan_id}


def reaction_pipeline(change: ReactionChange, now: datetime, event: EventDraft | None = None) -> list[dict[str, Any]]:
    """``apply_reaction`` as an update pipeline, so the server applies it to the current document.

    Every value that came from a client is wrapped in ``$literal``: in an aggregation expression a
    string starting with ``$`` would otherwise be read as a field path. An old entry without
    ``sender_id`` counts as ``legacy_system``, as the old backend reads it, so it is never a player's.
    """
    sender = {"$literal": change.sender_id}
    current = {"$ifNull": ["$reactions", []]}
    entry_sender = {"$ifNull": ["$$r.sender_id", LEGACY_REACTION_SENDER]}  # as mongoose reads old entries
    others = {"$filter": {"input": current, "as": "r", "cond": {"$ne": [entry_sender, sender]}}}
    if change.emoji is None:
        reactions: Any = others
    else:
        mine = {"$filter": {"input": current, "as": "r", "cond": {"$eq": [entry_sender, sender]}}}
        my_emoji = {"$arrayElemAt": [{"$map": {"input": mine, "as": "r", "in": "$$r.emoji"}}, 0]}
        entry = {"playerName": change.player_name, "emoji": change.emoji, "sender_id": change.sender_id}
        reactions = {
            "$cond": [
                {"$eq": [my_emoji, {"$literal": change.emoji}]},
                current,
                {"$concatArrays": [others, {"$literal": [entry]}]},
            ]
        }
    changed: dict[str, Any] = {"reactions": reactions, "updatedAt": now}
    if event is not None:
        queued = {"$literal": [OutboxEntry.of(event, now).model_dump()]}
        changed["outbox"] = {"$concatArrays": [{"$ifNull": ["$outbox", []]}, queued]}
    return [{"$set": changed}]


class MongoStore(MessageStore):
    """Messages in MongoDB in the game's layout."""

    def __init__(self, url: str, database: str, retention: timedelta | None = None) -> None:
        self._url = url
        self._database_name = database
        self._retention = retention
        self._client: Any = None
        self._database: Any = None
        self._clock = ChangeClock()
        self._shared_reads = SharedChangeReads(self._read_changes_since)

    async def open(self) -> None:
        try:
            with driver_errors_as_unavailable():  # a bad URL or an SRV lookup fails already in the client
                self._client, self._database = self._connect()
                await init_beanie(database=self._database, document_models=[ChatMessageDocument, PlayerDocument])
                await ensure_retention_index(ChatMessageDocument.get_pymongo_collection(), self._retention)
        except BaseException:
            await self.close()
            raise

    def _connect(self) -> tuple[AsyncMongoClient[dict[str, Any]], Any]:
        """PyMongo's asynchronous client for the URL, giving up on server selection in seconds by default."""
        options: dict[str, Any] = {"appname": "altzone-chat"}
        if not _url_sets(self._url, "serverSelectionTimeoutMS"):
            options["serverSelectionTimeoutMS"] = SERVER_SELECTION_TIMEOUT_MS
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self._url, **options)
        return client, client[self._database_name]

    async def close(self) -> None:
        client, self._client, self._database = self._client, None, None
        if client is not None:
            await client.close()

    async def ping(self) -> bool:
        if self._database is None:
            return False
        try:
            await self._database.command("ping")
        except Exception:  # a health probe answers "no", whatever went wrong
            return False
        return True

    def _live(self, query: dict[str, Any]) -> dict[str, Any]:
        """``query`` limited to messages within retention."""
        cutoff = retention_cutoff(self._retention)
        return query if cutoff is None else {**query, "createdAt": {"$gt": cutoff}}

    async def add(self, new: NewMessage, event: EventDraft | None = None) -> StoredMessage:
        document = ChatMessageDocument.from_new(new, self._clock.now(), event)
        with driver_errors_as_unavailable():
            await document.insert()
        return document.to_stored()

    async def react(
        self, room: RoomKey, change: ReactionChange, event: EventDraft | None = None
    ) -> StoredMessage | None:
        query = target_filter(MessageTarget(change.message_id, room))
        if query is None:
            return None
        return await self._stamped_update(self._live(query), lambda stamp: reaction_pipeline(change, stamp, event))

    async def get(self, target: MessageTarget) -> StoredMessage | None:
        query = target_filter(target)
        if query is None:
            return None
        with driver_errors_as_unavailable():
            document = await ChatMessageDocument.find_one(self._live(query))
        return None if document is None else document.to_stored()

    async def edit(self, target: MessageTarget, content: str, event: EventDraft | None = None) -> StoredMessage | None:
        query = target_filter(target)
        if query is None:
            return None
        return await self._stamped_update(
            self._live(query),
            lambda stamp: {
                "$set": {"content": content, "editedAt": stamp, "updatedAt": stamp},
                **_queue(event, stamp),
            },
        )

    async def delete(self, target: MessageTarget, event: EventDraft | None = None) -> StoredMessage | None:
        query = target_filter(target)
        if query is None:
            return None
        return await self._stamped_update(
            self._live(query),
            lambda stamp: {
                "$set": {"content": "", "reactions": [], "deletedAt": stamp, "updatedAt": stamp},
                "$unset": {"feeling": ""},
                **_queue(event, stamp),
            },
        )

    async def _stamped_update(
        self, query: dict[str, Any], update_at: Callable[[datetime], Any]
    ) -> StoredMessage | None:
        """One atomic update of the document ``query`` selects, whose ``updatedAt`` is later than the document's.

        The update applies only while the document's ``updatedAt`` is older than this call's stamp. Two
        concurrent changes may reach the server in the other order than they were stamped (or another
        replica's clock may run ahead); then the update matches nothing, and is retried with a stamp past
        the document's. So each state of a message carries a later ``updatedAt`` than the one before,
        which is how workers and clients tell a newer frame from a stale one. ``None`` once no document
        matches ``query`` at all.
        """
        collection = ChatMessageDocument.get_pymongo_collection()
        stamp = self._clock.now()
        with driver_errors_as_unavailable():
            for _ in range(REACT_ATTEMPTS):
                raw = await collection.find_one_and_update(
                    {**query, "updatedAt": {"$lt": stamp}}, update_at(stamp), return_document=ReturnDocument.AFTER
                )
                if raw is not None:
                    stored: StoredMessage = ChatMessageDocument.model_validate(raw).to_stored()
                    return stored
                current = await collection.find_one(query, {"updatedAt": 1})
                if current is None:
                    return None
                await asyncio.sleep(random.uniform(0, REACT_RETRY_JITTER_SECONDS))  # spread out the racers
                stamp = self._clock.now(after=as_utc(current["updatedAt"]))
        raise StoreUnavailable(f"a change of {query['_id']} lost {REACT_ATTEMPTS} races for its updatedAt")

    async def events_sent(self, message_id: str, event_ids: list[str]) -> None:
        collection = ChatMessageDocument.get_pymongo_collection()
        message = as_object_id(message_id)
        just_these = {"_id": message, "outbox": {"$size": len(event_ids)}, "outbox.id": {"$all": event_ids}}
        with driver_errors_as_unavailable():
            if (await collection.update_one(just_these, {"$unset": {"outbox": ""}})).matched_count:
                return  # the usual case, one write: the outbox held only these
            await collection.update_one({"_id": message}, {"$pull": {"outbox": {"id": {"$in": event_ids}}}})
            # A reaction queued in between makes the outbox non-empty again, and then it stays.
            await collection.update_one({"_id": message, "outbox": {"$size": 0}}, {"$unset": {"outbox": ""}})

    async def pending_events(self, older_than: datetime, limit: int) -> list[StoredMessage]:
        if limit <= 0:
            return []
        query = self._live({"outbox.at": {"$exists": True, "$lt": older_than}})
        with driver_errors_as_unavailable():
            documents = await ChatMessageDocument.find(query).sort(OLDEST_OUTBOX_FIRST).limit(limit).to_list()
        return [d.to_stored() for d in documents]

    async def page(self, room: RoomKey, limit: int, offset: int) -> HistorySlice:
        query = self._live({**room_filter(room), **LIVE})
        with driver_errors_as_unavailable():
            total = await ChatMessageDocument.find(query).count()
            documents = await self._newest_first(query, limit, skip=max(offset, 0))
        return HistorySlice([d.to_stored() for d in documents], total)

    async def page_before(self, room: RoomKey, before_id: str, limit: int) -> HistorySlice | None:
        cursor_id = as_object_id(before_id)
        if cursor_id is None:
            return None
        query = self._live({**room_filter(room), **LIVE})
        with driver_errors_as_unavailable():
            cursor = await ChatMessageDocument.find_one({"_id": cursor_id, **room_filter(room)})
            if cursor is None:
                return None
            older = {
                **query,
                "$or": [
                    {"createdAt": {"$lt": cursor.createdAt}},
                    {"createdAt": cursor.createdAt, "_id": {"$lt": cursor_id}},
                ],
            }
            documents = await self._newest_first(older, limit)
            total = await ChatMessageDocument.find(query).count()
        return HistorySlice([d.to_stored() for d in documents], total)

    async def changes_since(self, room: RoomKey, since: datetime, limit: int) -> ChangeSlice:
        return await self._shared_reads.changes_since(room, since, limit)

    async def _read_changes_since(self, room: RoomKey, since: datetime, limit: int) -> ChangeSlice:
        query = {**self._live(room_filter(room)), "updatedAt": {"$gt": since}}
        with driver_errors_as_unavailable():
            latest = await ChatMessageDocument.find(query).sort(LATEST_CHANGE_FIRST).limit(limit + 1).to_list()
        kept = latest[:limit]
        return ChangeSlice([d.to_stored() for d in reversed(kept)], complete=len(latest) == len(kept))

    async def _newest_first(self, query: dict[str, Any], limit: int, skip: int = 0) -> list[ChatMessageDocument]:
        if limit <= 0:  # MongoDB reads a limit of 0 as "no limit"
            return []
        return await ChatMessageDocument.find(query).sort(NEWEST_FIRST).skip(skip).limit(limit).to_list()


def _url_sets(url: str, option: str) -> bool:
    """Whether the connection string sets ``option`` (URI options are case-insensitive)."""
    return any(key.lower() == option.lower() for key, _ in parse_qsl(urlsplit(url).query))


def _queue(event: EventDraft | None, stamp: datetime) -> dict[str, Any]:
    """The part of an update document that queues ``event`` in the outbox, in the same atomic write."""
    if event is None:
        return {}
    return {"$push": {"outbox": OutboxEntry.of(event, stamp).model_dump()}}
