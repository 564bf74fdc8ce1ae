"""``CHAT_RETENTION``: nothing past it is shown or changed, on every store, and the game's TTL index is respected.

Three tiers: the setting itself; each store in-process (a retention of one second, and, on MongoDB,
documents written with an old ``createdAt`` that no TTL monitor has deleted yet); and real server
processes on every store backend, seen by a client through history, resume and reactions.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, MongoClient

from chatserver.protocol.vocabulary import RoomKey
from chatserver.settings import GAME_RETENTION, Settings, SettingsError
from chatserver.store.base import MessageStore, NewMessage, ReactionChange
from chatserver.store.documents import ChatMessageDocument
from chatserver.store.memory import MemoryStore
from chatserver.store.mongo import MongoStore
from chatserver.variables import parse_duration
from tests.conftest import STORE_BACKENDS, ServerFactory, _backend_env
from tests.protocol.test_resume import frames_until_ready, resume
from tests.support.harness import Client, ServerProcess, token

GLOBAL = RoomKey.global_room()
ALICE = "665af23e5e982f0013aa0001"
GAME_TTL_SECONDS = 259_200
ONE_SECOND = timedelta(seconds=1)


# --- The setting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"), [("2s", 2), ("90s", 90), ("15m", 900), ("12h", 43_200), ("3d", 259_200), ("1d12h", 129_600)]
)
def test_a_retention_is_a_duration_with_a_unit(raw: str, seconds: int) -> None:
    assert Settings.from_env({"CHAT_RETENTION": raw}).retention == timedelta(seconds=seconds)
    assert parse_duration(raw.upper()) == timedelta(seconds=seconds)


def test_retention_defaults_to_none_and_to_the_games_three_days_in_a_game_deployment() -> None:
    assert Settings.from_env({}).retention is None
    assert Settings.from_env({"CHAT_DIALECT": "game"}).retention == GAME_RETENTION == timedelta(days=3)
    assert Settings.from_env({"CHAT_DIALECT": "game", "CHAT_RETENTION": "none"}).retention is None
    assert Settings.from_env({"CHAT_DIALECT": "game", "CHAT_RETENTION": "12h"}).retention == timedelta(hours=12)


@pytest.mark.parametrize("raw", ["3", "3 days", "0s", "-2s", "2x", "s", "1.5h"])
def test_a_malformed_retention_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="CHAT_RETENTION must be a duration"):
        Settings.from_env({"CHAT_RETENTION": raw})


# --- Each store, in-process -----------------------------------------------------------------------------


def message(content: str) -> NewMessage:
    return NewMessage(GLOBAL, ALICE, "Alice", None, content, None)


async def mongo_store_on(url: str, database: str, retention: timedelta | None) -> AsyncIterator[MongoStore]:
    store = MongoStore(url, database, retention)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
        await client.drop_database(database)
        await client.close()


def mongo_url(backend: str, request: pytest.FixtureRequest) -> str:
    return _backend_env(backend, request)["MONGODB_URL"]


@pytest.fixture(params=STORE_BACKENDS)
async def short_lived_store(request: pytest.FixtureRequest) -> AsyncIterator[MessageStore]:
    """A store of each backend keeping messages for one second."""
    if request.param == "memory":
        yield MemoryStore(1000, ONE_SECOND)
        return
    database = f"retention_{secrets.token_hex(4)}"
    async for store in mongo_store_on(mongo_url(request.param, request), database, ONE_SECOND):
        yield store


async def test_a_message_past_retention_is_gone_from_every_read_and_cannot_be_reacted_to(
    short_lived_store: MessageStore,
) -> None:
    store = short_lived_store
    old = await store.add(message("old"))
    await asyncio.sleep(1.1)
    fresh = await store.add(message("fresh"))

    page = await store.page(GLOBAL, 10, 0)
    assert ([m.content for m in page.messages], page.total) == (["fresh"], 1)
    assert await store.page_before(GLOBAL, old.id, 10) is None
    assert await store.page_before(GLOBAL, fresh.id, 10) == type(page)([], 1)
    changes = await store.changes_since(GLOBAL, old.created_at - ONE_SECOND, 10)
    assert [m.content for m in changes.messages] == ["fresh"]
    assert await store.react(GLOBAL, ReactionChange(old.id, ALICE, "Alice", "👍")) is None
    assert await store.react(GLOBAL, ReactionChange(fresh.id, ALICE, "Alice", "👍")) is not None


def game_collection(url: str, database: str) -> Any:
    """The shared collection as the game backend leaves it, written with PyMongo directly."""
    client: MongoClient[dict[str, Any]] = MongoClient(url)
    return client, client[database]["ChatMessage"]


@pytest.fixture(params=[b for b in STORE_BACKENDS if b != "memory"])
def shared_database(request: pytest.FixtureRequest) -> tuple[str, str]:
    """A fresh database on a MongoDB server several clients can reach (the wire stand-in, a real server)."""
    return mongo_url(request.param, request), f"retention_{secrets.token_hex(4)}"


def old_document(age: timedelta) -> dict[str, Any]:
    written = datetime.now(UTC) - age
    return {"_id": ObjectId(), "type": "global", "sender_id": ObjectId(ALICE), "content": "from the old days",
            "reactions": [], "createdAt": written, "updatedAt": written}  # fmt: skip


async def test_start_up_keeps_the_games_ttl_index_and_hides_what_it_has_not_deleted_yet(
    shared_database: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, database = shared_database
    client, collection = game_collection(url, database)
    collection.create_index([("createdAt", 1)], expireAfterSeconds=GAME_TTL_SECONDS)  # what mongoose declares
    old = old_document(timedelta(minutes=5))
    collection.insert_one(old)

    with caplog.at_level(logging.WARNING):
        async for store in mongo_store_on(url, database, timedelta(seconds=2)):
            indexes = await ChatMessageDocument.get_pymongo_collection().index_information()
            assert indexes["createdAt_1"]["expireAfterSeconds"] == GAME_TTL_SECONDS
            assert [k for k, info in indexes.items() if list(info["key"]) == [("createdAt", 1)]] == ["createdAt_1"]
            fresh = await store.add(message("fresh"))
            assert [m.id for m in (await store.page(GLOBAL, 10, 0)).messages] == [fresh.id]
            assert await store.react(GLOBAL, ReactionChange(str(old["_id"]), ALICE, "Alice", "👍")) is None
            assert collection.count_documents({"_id": old["_id"]}) == 1, "still stored: only hidden"
    client.close()
    assert "already has the TTL index createdAt_1 (259200s); kept as it is" in caplog.text


async def test_start_up_beside_a_plain_created_at_index_warns_and_still_hides_old_messages(
    shared_database: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, database = shared_database
    client, collection = game_collection(url, database)
    collection.create_index([("createdAt", 1)], name="by_created")
    collection.insert_one(old_document(timedelta(minutes=5)))

    with caplog.at_level(logging.WARNING):
        async for store in mongo_store_on(url, database, timedelta(seconds=2)):
            indexes = await ChatMessageDocument.get_pymongo_collection().index_information()
            assert "expireAfterSeconds" not in indexes["by_created"] and "createdAt_1" not in indexes
            assert (await store.page(GLOBAL, 10, 0)).total == 0
    client.close()
    assert "plain {createdAt: 1} index, so no TTL index can be added beside it" in caplog.text


async def test_start_up_makes_the_ttl_index_beside_a_descending_created_at_index(
    shared_database: tuple[str, str],
) -> None:
    url, database = shared_database
    client, collection = game_collection(url, database)
    collection.create_index([("createdAt", -1)])

    async for _store in mongo_store_on(url, database, timedelta(hours=12)):
        indexes = await ChatMessageDocument.get_pymongo_collection().index_information()
        assert indexes["createdAt_1"]["expireAfterSeconds"] == 43_200
        assert "createdAt_-1" in indexes
    client.close()


async def test_without_retention_no_ttl_index_is_made(shared_database: tuple[str, str]) -> None:
    url, database = shared_database
    async for _store in mongo_store_on(url, database, None):
        indexes = await ChatMessageDocument.get_pymongo_collection().index_information()
        assert not [info for info in indexes.values() if "expireAfterSeconds" in info]


# --- Real server processes, seen by a client -------------------------------------------------------------


def not_found(message_id: str) -> dict[str, Any]:
    return {"error": [{"reason": "NOT_FOUND", "field": "_id", "value": message_id,
                       "message": "Could not find any objects with specified id", "additional": None}]}  # fmt: skip


def iso_before(stamp: str, delta: timedelta) -> str:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) - delta
    return moment.isoformat(timespec="milliseconds")[:23] + "Z"


@pytest.mark.parametrize("backend", STORE_BACKENDS)
async def test_with_two_seconds_retention_an_old_message_is_gone_from_history_resume_and_reactions(
    backend: str, request: pytest.FixtureRequest, server_factory: ServerFactory, new_id: Callable[[], str]
) -> None:
    server: ServerProcess = server_factory(**_backend_env(backend, request), CHAT_RETENTION="2s")
    player = token(new_id(), name="Alice")
    client = await Client.connect(server, player)
    old = await client.post("global", "soon gone")
    await asyncio.sleep(2.5)  # past the retention
    fresh = await client.post("global", "still here")

    async with httpx.AsyncClient(base_url=server.http_url) as http:
        page = (await http.get("/chat/history?type=global", headers={"Authorization": f"Bearer {player}"})).json()
    assert [m["_id"] for m in page["data"]["ChatMessage"]] == [fresh["_id"]]
    assert page["paginationData"]["itemCount"] == 1

    assert await client.react("global", old["_id"], "👍") == not_found(old["_id"])

    back = await resume(server.ws_url, player, iso_before(old["createdAt"], timedelta(seconds=1)))
    replayed, _ready = await frames_until_ready(back)
    assert [frame["message"]["_id"] for frame in replayed] == [fresh["_id"]]


async def test_a_server_starts_on_a_collection_carrying_the_games_ttl_index(
    server_factory: ServerFactory, mongo_standin_url: str, new_id: Callable[[], str]
) -> None:
    database = f"retention_{secrets.token_hex(4)}"
    client, collection = game_collection(mongo_standin_url, database)
    collection.create_index([("createdAt", 1)], expireAfterSeconds=GAME_TTL_SECONDS)
    collection.insert_one(old_document(timedelta(minutes=1)))
    server = server_factory(
        MONGODB_URL=mongo_standin_url, MONGODB_DB=database, CHAT_PLAYERS_FROM_DB="false", CHAT_RETENTION="30s"
    )
    player = token(new_id(), name="Alice")
    fresh = await (await Client.connect(server, player)).post("global", "hello")

    async with httpx.AsyncClient(base_url=server.http_url) as http:
        page = (await http.get("/chat/history?type=global", headers={"Authorization": f"Bearer {player}"})).json()
    assert [m["_id"] for m in page["data"]["ChatMessage"]] == [fresh["_id"]]
    assert collection.index_information()["createdAt_1"]["expireAfterSeconds"] == GAME_TTL_SECONDS
    client.close()
