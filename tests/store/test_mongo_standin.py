"""The MongoDB wire-protocol stand-in (``tests.support.mongo_standin``) through real PyMongo: CI notices if it breaks.

The stand-in is mongomock's semantics behind the MongoDB wire protocol. These tests prove the driver path:
PyMongo's handshake, commands and BSON (sync and async clients), cursors with ``getMore``, error codes
that PyMongo turns into its own exceptions, Beanie and ``MongoStore`` on top, and several processes
(including two ``chatserver`` processes) sharing one store. They prove nothing about MongoDB itself: not
its query planner or index use, not atomicity under real concurrency (the stand-in runs one command at a
time), not durability, replication or failover. The store contract on a real server is still
``MONGODB_URL=... pytest tests/store/test_store.py``.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bson
import httpx
import pymongo
import pytest
from pymongo import AsyncMongoClient, MongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure, ServerSelectionTimeoutError

from chatserver.protocol.vocabulary import RoomKey
from chatserver.store.base import NewMessage, ReactionChange
from chatserver.store.mongo import MongoStore
from tests.support import standin_fixtures
from tests.support.harness import Client, ServerProcess, token

mongo_standin_url = standin_fixtures.mongo_standin_url  # the session fixture, visible to this module's tests

ALICE = "665af23e5e982f0013aa0001"
BOB = "665af23e5e982f0013aa0002"


def fresh_name() -> str:
    return f"standin_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(mongo_standin_url: str) -> Iterator[MongoClient[dict[str, Any]]]:
    opened: MongoClient[dict[str, Any]] = MongoClient(mongo_standin_url, serverSelectionTimeoutMS=3000)
    yield opened
    opened.close()


def test_the_sync_client_reads_writes_updates_aggregates_and_indexes(client: MongoClient[dict[str, Any]]) -> None:
    collection = client[fresh_name()]["things"]
    assert client.admin.command("ping")["ok"] == 1
    collection.insert_many([{"n": n, "group": n % 3} for n in range(10)])

    top = [d["n"] for d in collection.find({"n": {"$gte": 2}}, {"_id": 0}).sort("n", pymongo.DESCENDING).limit(3)]
    tagged = {"$concatArrays": [{"$ifNull": ["$tags", []]}, ["x"]]}
    pipeline = [{"$set": {"double": {"$multiply": ["$n", 2]}, "tags": tagged}}]
    updated = collection.find_one_and_update({"n": 4}, pipeline, return_document=ReturnDocument.AFTER)
    groups = list(collection.aggregate([{"$group": {"_id": "$group", "count": {"$sum": 1}}}, {"$sort": {"_id": 1}}]))
    index = collection.create_index([("group", 1), ("n", -1)], name="group_n", unique=True)

    assert top == [9, 8, 7]
    assert updated is not None and (updated["double"], updated["tags"]) == (8, ["x"])
    assert groups == [{"_id": 0, "count": 4}, {"_id": 1, "count": 3}, {"_id": 2, "count": 3}]
    assert index == "group_n"
    assert [list(spec["key"].items()) for spec in collection.list_indexes()] == [
        [("_id", 1)],
        [("group", 1), ("n", -1)],
    ]
    assert collection.count_documents({"group": 1}) == 3
    assert sorted(collection.distinct("group")) == [0, 1, 2]


def test_write_errors_reach_the_driver_as_its_own_exceptions(client: MongoClient[dict[str, Any]]) -> None:
    collection = client[fresh_name()]["unique"]
    collection.create_index("key", unique=True)
    collection.insert_one({"key": 1})

    with pytest.raises(DuplicateKeyError):
        collection.insert_one({"key": 1})
    with pytest.raises(OperationFailure) as unknown:
        client[fresh_name()].command("frobnicate")
    assert unknown.value.code == 59


def test_upserts_deletes_and_find_and_modify_report_what_they_did(client: MongoClient[dict[str, Any]]) -> None:
    collection = client[fresh_name()]["things"]

    upserted = collection.update_one({"name": "a"}, {"$set": {"v": 1}}, upsert=True)
    before = collection.find_one_and_update({"name": "a"}, {"$inc": {"v": 1}})
    created = collection.find_one_and_update(
        {"name": "b"}, {"$set": {"v": 5}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    removed = collection.find_one_and_delete({"name": "a"}, projection={"_id": 0})

    assert upserted.upserted_id is not None and upserted.matched_count == 0
    assert before is not None and before["v"] == 1
    assert created is not None and created["v"] == 5
    assert removed == {"name": "a", "v": 2}
    assert collection.delete_many({}).deleted_count == 1


async def test_the_async_client_pages_a_large_result_with_get_more(mongo_standin_url: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_standin_url, serverSelectionTimeoutMS=3000)
    try:
        collection = client[fresh_name()]["many"]
        await collection.insert_many([{"n": n} for n in range(250)])

        seen = [d["n"] async for d in collection.find().sort("n", 1).batch_size(40)]

        assert seen == list(range(250))
        assert await collection.count_documents({}) == 250
    finally:
        await client.close()


def test_another_process_sees_the_same_store(client: MongoClient[dict[str, Any]], mongo_standin_url: str) -> None:
    database = fresh_name()
    writer = (
        "import sys, pymongo\n"
        "client = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=3000)\n"
        "client[sys.argv[2]]['shared'].insert_one({'from': 'child'})\n"
    )

    subprocess.run([sys.executable, "-c", writer, mongo_standin_url, database], check=True, timeout=30)

    assert client[database]["shared"].find_one({}, {"_id": 0}) == {"from": "child"}


async def test_the_mongo_store_runs_on_it_through_beanie(mongo_standin_url: str) -> None:
    store = MongoStore(mongo_standin_url, fresh_name())
    await store.open()
    try:
        room = RoomKey.global_room()
        added = await store.add(NewMessage(room, ALICE, "Alice", None, "over the wire", None))
        reacted = await store.react(room, ReactionChange(added.id, BOB, "Bob", "👍"))
        page = await store.page(room, limit=10, offset=0)

        assert await store.ping() is True
        assert reacted is not None and [r.emoji for r in reacted.reactions] == ["👍"]
        assert [m.content for m in page.messages] == ["over the wire"] and page.total == 1
    finally:
        await store.close()


async def test_two_chat_servers_share_history_through_it(
    mongo_standin_url: str, tmp_path: Path, new_id: Callable[[], str]
) -> None:
    env = {"MONGODB_URL": mongo_standin_url, "MONGODB_DB": fresh_name(), "CHAT_PLAYERS_FROM_DB": "false"}
    first, second = ServerProcess(env=env).start(tmp_path), ServerProcess(env=env).start(tmp_path)
    try:
        bearer = token(new_id(), name="Wanderer")
        posted = await (await Client.connect(first, bearer)).post("global", "posted on the first replica")
        reaction = await (await Client.connect(second, bearer)).react("global", posted["_id"], "👍")
        history = httpx.get(
            f"{second.http_url}/chat/history",
            params={"type": "global"},
            headers={"Authorization": f"Bearer {bearer}"},
            timeout=5,
        )

        assert reaction["event"] == "newReaction" and reaction["message"]["_id"] == posted["_id"]
        assert [m["_id"] for m in history.json()["data"]["ChatMessage"]] == [posted["_id"]]
    finally:
        first.stop()
        second.stop()


def raw_message(request_id: int, opcode: int, payload: bytes) -> bytes:
    return struct.pack("<iiii", 16 + len(payload), request_id, 0, opcode) + payload


def read_reply(connection: socket.socket) -> tuple[int, int, bytes]:
    """The ``responseTo``, opcode and body of the next message from the stand-in."""
    header = connection.recv(16, socket.MSG_WAITALL)
    length, _request_id, response_to, opcode = struct.unpack("<iiii", header)
    return response_to, opcode, connection.recv(length - 16, socket.MSG_WAITALL)


def op_msg_body(flags: int, command: dict[str, Any], sequence: tuple[str, list[dict[str, Any]]] | None) -> bytes:
    body = struct.pack("<I", flags) + b"\x00" + bson.encode(command)
    if sequence is not None:
        name, documents = sequence
        section = name.encode() + b"\x00" + b"".join(bson.encode(d) for d in documents)
        body += b"\x01" + struct.pack("<i", 4 + len(section)) + section
    return body + (b"\x00\x00\x00\x00" if flags & 1 else b"")  # an unchecked CRC-32C when checksumPresent


def test_the_legacy_handshake_checksums_and_more_to_come_on_the_raw_protocol(mongo_standin_url: str) -> None:
    """What PyMongo rarely or never sends: OP_QUERY, a trailing checksum, a write that wants no reply."""
    address = urlsplit(mongo_standin_url)
    database = fresh_name()
    with socket.create_connection((address.hostname, address.port), timeout=5) as connection:
        query = struct.pack("<i", 0) + b"admin.$cmd\x00" + struct.pack("<ii", 0, -1) + bson.encode({"isMaster": 1})
        connection.sendall(raw_message(1, 2004, query))
        response_to, opcode, body = read_reply(connection)
        hello = bson.decode(body[20:])
        assert (response_to, opcode, hello["ismaster"], hello["maxWireVersion"]) == (1, 1, True, 21)

        insert = {"insert": "raw", "$db": database}
        connection.sendall(raw_message(2, 2013, op_msg_body(1, insert, ("documents", [{"_id": 1}, {"_id": 2}]))))
        response_to, opcode, body = read_reply(connection)
        assert (response_to, opcode, bson.decode(body[5:])) == (2, 2013, {"n": 2, "ok": 1.0})

        connection.sendall(raw_message(3, 2013, op_msg_body(2, insert, ("documents", [{"_id": 3}]))))  # moreToCome
        connection.sendall(raw_message(4, 2013, op_msg_body(0, {"count": "raw", "$db": database}, None)))
        response_to, _, body = read_reply(connection)
        assert (response_to, bson.decode(body[5:])) == (4, {"n": 3, "ok": 1.0})


def test_sigterm_stops_it_cleanly(tmp_path: Path) -> None:
    stand_in = standin_fixtures.MongoStandIn(tmp_path).start()
    with MongoClient[dict[str, Any]](stand_in.url, serverSelectionTimeoutMS=3000) as connected:
        connected.admin.command("ping")

        assert stand_in.stop() == 0

    with (
        MongoClient[dict[str, Any]](stand_in.url, serverSelectionTimeoutMS=300) as late,
        pytest.raises(ServerSelectionTimeoutError),
    ):
        late.admin.command("ping")


def test_a_durable_stand_in_comes_back_on_its_port_with_its_documents_and_indexes(tmp_path: Path) -> None:
    database = fresh_name()
    with standin_fixtures.MongoStandIn(tmp_path, durable=True) as stand_in:
        with MongoClient[dict[str, Any]](stand_in.url, serverSelectionTimeoutMS=3000) as before:
            before[database]["things"].create_index("name", unique=True)
            before[database]["things"].insert_many([{"name": "kept", "at": 1}, {"name": "also kept", "at": 2}])
        assert stand_in.stop() == 0
        port = stand_in.port
        stand_in.start()

        assert stand_in.port == port
        with MongoClient[dict[str, Any]](stand_in.url, serverSelectionTimeoutMS=3000) as after:
            things = after[database]["things"]
            assert [d["name"] for d in things.find({}, {"_id": 0}).sort("at")] == ["kept", "also kept"]
            with pytest.raises(DuplicateKeyError):
                things.insert_one({"name": "kept"})
