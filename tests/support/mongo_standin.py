"""A test-only MongoDB stand-in: the wire protocol on a TCP port, mongomock behind it.

mongomock-motor runs in the test process only, so it cannot be one store shared by several chat server
processes (replicas). This module is a small server that speaks enough of the MongoDB wire protocol for
real PyMongo (sync and async, and so Beanie) and runs each command against one in-memory
``mongomock.MongoClient``. Every process that connects to it sees the same data::

    python -m tests.support.mongo_standin --port 27999      # prints "listening on 127.0.0.1:27999" when ready
    MONGODB_URL=mongodb://127.0.0.1:27999/?directConnection=true ...

What it speaks: OP_MSG (opcode 2013, kind-0 body and kind-1 document sequences, the ``checksumPresent``
and ``moreToCome`` flags) for every command, and legacy OP_QUERY (2004) answered with OP_REPLY (1),
which PyMongo uses for the first ``hello``/``isMaster`` of a connection. It answers ``hello`` as a
standalone MongoDB 7.0 (wire version 21) without compression, authentication or ``topologyVersion``, so
the driver polls instead of streaming heartbeats and never attempts retryable writes or transactions.

What it proves and what it does not: the semantics are mongomock's, so it checks the driver path (the
connection string, PyMongo's commands and BSON, Beanie's commands, several processes on one store), not
MongoDB's query planner, index use, write atomicity under real concurrency, durability or failover.
Commands run one at a time on the event loop without awaiting in between, so each command is atomic
here even where MongoDB only promises per-document atomicity.

With ``--dbpath FILE`` the data outlives a restart, as a real server's does: a clean stop (SIGTERM)
writes every database to that file and the next start reads it back, so a test can take "MongoDB"
down by stopping the stand-in and bring it back with what was stored before.

Unknown commands answer ``CommandNotFound`` (code 59) and are logged to stderr, so a new driver call
shows up as a readable error rather than a hang; ``--log-commands`` logs every command name, which is
how the supported set was found.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import signal
import struct
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bson
import bson.errors
import mongomock
from bson.codec_options import CodecOptions
from bson.int64 import Int64
from mongomock.filtering import filter_applies
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013
HEADER = struct.Struct("<iiii")  # messageLength, requestID, responseTo, opCode
CHECKSUM_PRESENT = 1 << 0
MORE_TO_COME = 1 << 1

MAX_WIRE_VERSION = 21  # MongoDB 7.0
MAX_BSON_OBJECT_SIZE = 16 * 1024 * 1024
MAX_MESSAGE_SIZE = 48_000_000
MAX_WRITE_BATCH_SIZE = 100_000
BATCH_BYTES = MAX_BSON_OBJECT_SIZE - 64 * 1024  # room for the cursor envelope around a batch
VERSION = "7.0.0"

# Decode as the driver encodes: plain dicts (ordered, so sort and index keys keep their order), naive UTC
# datetimes (what mongomock stores), binary UUIDs left as ``Binary`` so they round-trip untouched.
CODEC = CodecOptions(document_class=dict, tz_aware=False)

# Fields every command may carry that only matter to a real deployment (sessions, cluster time, read
# and write concerns, timeouts). Dropping them changes nothing in mongomock's answer.
IGNORED_FIELDS = frozenset(
    {
        "$db",
        "lsid",
        "$clusterTime",
        "$readPreference",
        "txnNumber",
        "autocommit",
        "startTransaction",
        "writeConcern",
        "readConcern",
        "comment",
        "maxTimeMS",
        "bypassDocumentValidation",
        "apiVersion",
        "apiStrict",
        "apiDeprecationErrors",
    }
)

CODE_NAMES = {
    2: "BadValue",
    8: "UnknownError",
    9: "FailedToParse",
    26: "NamespaceNotFound",
    27: "IndexNotFound",
    43: "CursorNotFound",
    48: "NamespaceExists",
    59: "CommandNotFound",
    85: "IndexOptionsConflict",
    238: "NotImplemented",
    10334: "BSONObjectTooLarge",
    11000: "DuplicateKey",
}


class CommandError(Exception):
    """A command failure with a MongoDB error code; becomes ``{"ok": 0, "errmsg", "code", "codeName"}``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def error_reply(message: str, code: int) -> dict[str, Any]:
    return {"ok": 0.0, "errmsg": message, "code": code, "codeName": CODE_NAMES.get(code, "UnknownError")}


def error_code(error: Exception) -> int:
    """The MongoDB code for a mongomock failure; PyMongo picks its exception class from it (11000 = duplicate)."""
    if isinstance(error, DuplicateKeyError):
        return 11000
    if isinstance(error, NotImplementedError):
        return 238
    code = getattr(error, "code", None)
    if isinstance(code, int):
        return code
    if "already exists with different options" in str(error):
        return 85
    return 2


def log(message: str) -> None:
    print(f"mongo-standin: {message}", file=sys.stderr, flush=True)


@dataclass
class OpenCursor:
    """Documents a ``find``/``aggregate`` has not returned yet, handed out by ``getMore``."""

    ns: str
    documents: Peekable


@dataclass
class Backend:
    """The commands: one mongomock client behind every connection, so all clients share one store."""

    log_commands: bool = False
    client: Any = field(default_factory=mongomock.MongoClient)
    cursors: dict[int, OpenCursor] = field(default_factory=dict)
    next_cursor_id: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    next_connection_id: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def run(self, command: dict[str, Any], connection_id: int) -> dict[str, Any]:
        """Execute one command document; never raises, so a connection survives any failing command."""
        if not command:
            return error_reply("empty command", 9)
        name = next(iter(command))
        if self.log_commands:
            log(f"{command.get('$db', '?')}: {name}")
        handler = self.handlers().get(name)
        if handler is None:
            log(f"unknown command {name!r}: {sorted(command)}")
            return error_reply(f"no such command: '{name}' (mongo stand-in)", 59)
        database = self.client[command.get("$db", "admin")]
        arguments = {key: value for key, value in command.items() if key not in IGNORED_FIELDS}
        try:
            return {**handler(database, arguments, connection_id), "ok": 1.0}
        except CommandError as error:
            return error_reply(str(error), error.code)
        except (PyMongoError, NotImplementedError, ValueError, TypeError, KeyError) as error:
            if isinstance(error, NotImplementedError | TypeError | KeyError):
                log(f"{name} failed in mongomock: {error!r}\n{traceback.format_exc()}")
            return error_reply(f"{type(error).__name__}: {error}", error_code(error))
        except Exception as error:  # a bug here must reach the test as an error reply, not a dropped connection
            log(f"{name} crashed: {error!r}\n{traceback.format_exc()}")
            return error_reply(f"mongo stand-in internal error: {error!r}", 8)

    def save(self, path: Path) -> None:
        """Every collection's indexes and documents, as a stream of BSON records (see ``load``)."""
        with path.open("wb") as out:
            for database_name in self.client.list_database_names():
                database = self.client[database_name]
                for name in database.list_collection_names():
                    collection = database[name]
                    indexes = [index for index in collection.list_indexes() if index["name"] != "_id_"]
                    out.write(bson.encode({"db": database_name, "collection": name, "indexes": indexes}))
                    for document in collection.find():
                        out.write(bson.encode({"db": database_name, "collection": name, "document": document}))

    def load(self, path: Path) -> None:
        """What ``save`` wrote: each collection with its indexes, then its documents."""
        with path.open("rb") as records:
            for record in bson.decode_file_iter(records, CODEC):
                collection = self.client[record["db"]][record["collection"]]
                if "document" in record:
                    collection.insert_one(record["document"])
                    continue
                collection.database.create_collection(record["collection"])
                for spec in record["indexes"]:
                    options = {key: value for key, value in spec.items() if key not in {"key", "v", "ns"}}
                    collection.create_index(list(spec["key"].items()), **options)

    def handlers(self) -> dict[str, Callable[[Any, dict[str, Any], int], dict[str, Any]]]:
        return {
            "hello": self.hello,
            "isMaster": self.hello,
            "ismaster": self.hello,
            "ping": lambda *_: {},
            "buildInfo": self.build_info,
            "buildinfo": self.build_info,
            "endSessions": lambda *_: {},
            "listDatabases": self.list_databases,
            "dropDatabase": self.drop_database,
            "listCollections": self.list_collections,
            "create": self.create,
            "drop": self.drop,
            "listIndexes": self.list_indexes,
            "createIndexes": self.create_indexes,
            "dropIndexes": self.drop_indexes,
            "insert": self.insert,
            "update": self.update,
            "delete": self.delete,
            "find": self.find,
            "getMore": self.get_more,
            "killCursors": self.kill_cursors,
            "findAndModify": self.find_and_modify,
            "findandmodify": self.find_and_modify,
            "aggregate": self.aggregate,
            "count": self.count,
            "distinct": self.distinct,
        }

    # --- Handshake and server information ---------------------------------------------------------------

    def hello(self, _database: Any, _command: dict[str, Any], connection_id: int) -> dict[str, Any]:
        """A standalone primary: no ``setName`` (no retryable writes) and no ``topologyVersion`` (no streaming)."""
        return {
            "helloOk": True,
            "isWritablePrimary": True,
            "ismaster": True,
            "maxBsonObjectSize": MAX_BSON_OBJECT_SIZE,
            "maxMessageSizeBytes": MAX_MESSAGE_SIZE,
            "maxWriteBatchSize": MAX_WRITE_BATCH_SIZE,
            "localTime": datetime.datetime.now(datetime.UTC),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": connection_id,
            "minWireVersion": 0,
            "maxWireVersion": MAX_WIRE_VERSION,
            "readOnly": False,
        }

    def build_info(self, *_: Any) -> dict[str, Any]:
        return {"version": VERSION, "versionArray": [7, 0, 0, 0], "bits": 64, "maxBsonObjectSize": MAX_BSON_OBJECT_SIZE}

    def list_databases(self, _database: Any, command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        names = self.client.list_database_names()
        entries = [{"name": name, "sizeOnDisk": 0, "empty": False} for name in names]
        if command.get("filter"):
            entries = [entry for entry in entries if filter_applies(command["filter"], entry)]
        if command.get("nameOnly"):
            return {"databases": [{"name": entry["name"]} for entry in entries]}
        return {"databases": entries, "totalSize": 0}

    def drop_database(self, database: Any, _command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        self.client.drop_database(database.name)
        return {"dropped": database.name}

    # --- Collections and indexes ------------------------------------------------------------------------

    def list_collections(self, database: Any, command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        entries = [
            {
                "name": name,
                "type": "collection",
                "options": {},
                "info": {"readOnly": False},
                "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            }
            for name in database.list_collection_names()
        ]
        if command.get("filter"):
            entries = [entry for entry in entries if filter_applies(command["filter"], entry)]
        if command.get("nameOnly"):
            entries = [{"name": entry["name"], "type": entry["type"]} for entry in entries]
        return self.cursor_reply(f"{database.name}.$cmd.listCollections", entries, command.get("cursor"))

    def create(self, database: Any, command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        name = command["create"]
        reject_unsupported(command, "capped", "timeseries", "validator", "viewOn", "clusteredIndex", "collation")
        if name in database.list_collection_names():
            raise CommandError(f"Collection {database.name}.{name} already exists.", 48)
        database.create_collection(name)
        return {}

    def drop(self, database: Any, command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        """MongoDB 7 answers ok for a collection that does not exist, as this does."""
        name = command["drop"]
        indexes = len(database[name].index_information())
        database.drop_collection(name)
        return {"ns": f"{database.name}.{name}", "nIndexesWas": indexes}

    def list_indexes(self, database: Any, command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        name = command["listIndexes"]
        if name not in database.list_collection_names():
            raise CommandError(f"ns does not exist: {database.name}.{name}", 26)  # PyMongo reads 26 as "no indexes"
        indexes = list(database[name].list_indexes())
        return self.cursor_reply(f"{database.name}.{name}", indexes, command.get("cursor"))

    def create_indexes(self, database: Any, command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        name = command["createIndexes"]
        created = name not in database.list_collection_names()
        collection = database[name]
        before = len(collection.index_information()) or 1  # the implicit ``_id_`` index of a new collection
        for spec in command["indexes"]:
            options = {key: value for key, value in spec.items() if key not in {"key", "v", "ns", "background"}}
            collection.create_index(list(spec["key"].items()), **options)
        after = len(collection.index_information())
        return {"createdCollectionAutomatically": created, "numIndexesBefore": before, "numIndexesAfter": after}

    def drop_indexes(self, database: Any, command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        collection = database[command["dropIndexes"]]
        existing = collection.index_information()
        index = command.get("index", "*")
        if index == "*":
            collection.drop_indexes()
            return {"nIndexesWas": len(existing)}
        names = index if isinstance(index, list) else [index]
        for each in names:
            if isinstance(each, dict):
                each = next((n for n, info in existing.items() if list(info["key"]) == list(each.items())), None)
            if each not in existing or each == "_id_":
                raise CommandError(f"index not found with name [{each}]", 27)
            collection.drop_index(each)
        return {"nIndexesWas": len(existing)}

    # --- Writes -----------------------------------------------------------------------------------------

    def insert(self, database: Any, command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        collection = database[command["insert"]]
        inserted, errors = 0, []
        for index, document in enumerate(command.get("documents", [])):
            try:
                collection.insert_one(document)
                inserted += 1
            except (OperationFailure, ValueError) as error:
                errors.append(write_error(index, error))
                if command.get("ordered", True):
                    break
        return with_write_errors({"n": inserted}, errors)

    def update(self, database: Any, command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        collection = database[command["update"]]
        matched, modified, upserted, errors = 0, 0, [], []
        for index, statement in enumerate(command.get("updates", [])):
            try:
                query, change = statement.get("q", {}), statement["u"]
                reject_unsupported(statement, "collation", "arrayFilters")
                if is_replacement(change) and statement.get("multi"):
                    raise CommandError("multi update is not supported for replacement-style update", 9)
                result = collection._update(
                    query, change, upsert=bool(statement.get("upsert")), multi=bool(statement.get("multi"))
                )
                if result["upserted"] is not None:
                    upserted.append({"index": index, "_id": result["upserted"]})
                else:
                    matched += result["n"]
                    modified += result["nModified"]
            except (OperationFailure, CommandError, ValueError) as error:
                errors.append(write_error(index, error))
                if command.get("ordered", True):
                    break
        reply: dict[str, Any] = {"n": matched + len(upserted), "nModified": modified}
        if upserted:
            reply["upserted"] = upserted
        return with_write_errors(reply, errors)

    def delete(self, database: Any, command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        collection = database[command["delete"]]
        deleted, errors = 0, []
        for index, statement in enumerate(command.get("deletes", [])):
            try:
                reject_unsupported(statement, "collation")
                if statement.get("limit", 0) == 1:
                    deleted += collection.delete_one(statement.get("q", {})).deleted_count
                else:
                    deleted += collection.delete_many(statement.get("q", {})).deleted_count
            except (OperationFailure, CommandError, ValueError) as error:
                errors.append(write_error(index, error))
                if command.get("ordered", True):
                    break
        return with_write_errors({"n": deleted}, errors)

    def find_and_modify(self, database: Any, command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        """Find, then change that one document by ``_id``; atomic here because nothing runs in between."""
        name = next(iter(command))
        collection = database[command[name]]
        reject_unsupported(command, "collation", "arrayFilters")
        query, sort, fields = command.get("query") or {}, sort_spec(command.get("sort")), command.get("fields")
        remove, change, new = bool(command.get("remove")), command.get("update"), bool(command.get("new"))
        if remove == (change is not None):
            raise CommandError("Either an update or remove=true must be specified", 9)
        if remove and new:
            raise CommandError("Cannot specify both new=true and remove=true", 9)
        existing = collection.find_one(query, sort=sort)
        if existing is None and not (command.get("upsert") and not remove):
            return {"lastErrorObject": {"n": 0, "updatedExisting": False}, "value": None}
        if existing is not None:
            by_id = {"_id": existing["_id"]}
            before = collection.find_one(by_id, projection=fields)
            if remove:
                collection.delete_one(by_id)
                return {"lastErrorObject": {"n": 1}, "value": before}
            collection._update(by_id, change)
            value = collection.find_one(by_id, projection=fields) if new else before
            return {"lastErrorObject": {"n": 1, "updatedExisting": True}, "value": value}
        upserted_id = collection._update(query, change, upsert=True)["upserted"]
        value = collection.find_one({"_id": upserted_id}, projection=fields) if new else None
        return {"lastErrorObject": {"n": 1, "updatedExisting": False, "upserted": upserted_id}, "value": value}

    # --- Reads ------------------------------------------------------------------------------------------

    def find(self, database: Any, command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        reject_unsupported(command, "collation", "min", "max", "returnKey", "showRecordId", "tailable")
        collection = database[command["find"]]
        # A list, not mongomock's lazy cursor: a write between two getMores must not change what it yields.
        documents = list(
            collection.find(
                command.get("filter") or {},
                projection=command.get("projection") or None,
                skip=command.get("skip", 0),
                limit=abs(command.get("limit", 0)),
                sort=sort_spec(command.get("sort")),
            )
        )
        cursor = {"batchSize": command["batchSize"]} if "batchSize" in command else None
        return self.cursor_reply(
            f"{database.name}.{collection.name}", documents, cursor, single=bool(command.get("singleBatch"))
        )

    def aggregate(self, database: Any, command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        reject_unsupported(command, "collation", "let", "explain")
        target = command["aggregate"]
        if not isinstance(target, str):
            raise CommandError("database-level aggregate (aggregate: 1) is not supported by the stand-in", 238)
        documents = list(database[target].aggregate(command.get("pipeline", [])))
        return self.cursor_reply(f"{database.name}.{target}", documents, command.get("cursor"))

    def count(self, database: Any, command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        options = {key: command[key] for key in ("skip", "limit") if command.get(key)}
        return {"n": database[command["count"]].count_documents(command.get("query") or {}, **options)}

    def distinct(self, database: Any, command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        return {"values": database[command["distinct"]].distinct(command["key"], command.get("query") or None)}

    # --- Cursors ----------------------------------------------------------------------------------------

    def cursor_reply(
        self, ns: str, documents: Any, cursor: dict[str, Any] | None, single: bool = False
    ) -> dict[str, Any]:
        """The first batch; what does not fit (``batchSize`` or 16 MB) waits for ``getMore`` under a new id.

        ``batchSize: 0`` opens the cursor with an empty first batch, as MongoDB does (PyMongo sends it
        for ``$out``/``$merge`` pipelines).
        """
        pending = Peekable(documents)
        batch_size = (cursor or {}).get("batchSize")
        batch: list[dict[str, Any]]
        if batch_size == 0 and not single:
            batch, more = [], pending.has_more()
        else:
            batch, more = take_batch(pending, None if single else batch_size)
        cursor_id = 0
        if more and not single:
            cursor_id = next(self.next_cursor_id)
            self.cursors[cursor_id] = OpenCursor(ns, pending)
        return {"cursor": {"id": Int64(cursor_id), "ns": ns, "firstBatch": batch}}

    def get_more(self, _database: Any, command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        cursor_id = int(command["getMore"])
        cursor = self.cursors.pop(cursor_id, None)
        if cursor is None:
            raise CommandError(f"cursor id {cursor_id} not found", 43)
        batch, more = take_batch(cursor.documents, command.get("batchSize"))
        if more:
            self.cursors[cursor_id] = cursor
        return {"cursor": {"id": Int64(cursor_id if more else 0), "ns": cursor.ns, "nextBatch": batch}}

    def kill_cursors(self, _database: Any, command: dict[str, Any], _connection_id: int) -> dict[str, Any]:
        killed: list[Any] = []
        missing: list[Any] = []
        for cursor_id in command.get("cursors", []):
            (killed if self.cursors.pop(int(cursor_id), None) is not None else missing).append(cursor_id)
        return {"cursorsKilled": killed, "cursorsNotFound": missing, "cursorsAlive": [], "cursorsUnknown": []}


def take_batch(documents: Peekable, batch_size: int | None) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``batch_size`` documents (all when 0 or absent, as for ``getMore``) within one BSON document's size.

    Returns the batch and whether documents are left, so the caller knows whether to keep a cursor open.
    """
    batch: list[dict[str, Any]] = []
    size = 0
    for document in documents:
        encoded = len(bson.encode(document, codec_options=CODEC))
        if batch and size + encoded > BATCH_BYTES:
            documents.push(document)
            return batch, True
        batch.append(document)
        size += encoded
        if batch_size and len(batch) >= batch_size:
            return batch, documents.has_more()
    return batch, False


class Peekable(Iterator[dict[str, Any]]):
    """An iterator that can look one document ahead and take one back, so batches never lose a document."""

    def __init__(self, documents: Any) -> None:
        self._documents = iter(documents)
        self._pending: list[dict[str, Any]] = []

    def __next__(self) -> dict[str, Any]:
        if self._pending:
            return self._pending.pop()
        return next(self._documents)

    def push(self, document: dict[str, Any]) -> None:
        self._pending.append(document)

    def has_more(self) -> bool:
        try:
            self.push(next(self))
        except StopIteration:
            return False
        return True


def sort_spec(sort: dict[str, Any] | None) -> list[tuple[str, Any]] | None:
    return list(sort.items()) if sort else None


def is_replacement(change: Any) -> bool:
    return isinstance(change, dict) and not any(key.startswith("$") for key in change)


def reject_unsupported(command: dict[str, Any], *options: str) -> None:
    """Refuse options mongomock would silently ignore, so a test never passes on a wrong answer."""
    for option in options:
        if command.get(option):
            raise CommandError(f"option {option!r} is not supported by the mongo stand-in", 238)


def write_error(index: int, error: Exception) -> dict[str, Any]:
    code = error.code if isinstance(error, CommandError) else error_code(error)
    return {"index": index, "code": code, "errmsg": str(error)}


def with_write_errors(reply: dict[str, Any], errors: list[dict[str, Any]]) -> dict[str, Any]:
    """Write commands stay ``ok: 1`` and list per-statement failures, which PyMongo turns into its exceptions."""
    return {**reply, "writeErrors": errors} if errors else reply


# --- The wire protocol -------------------------------------------------------------------------------------


class ProtocolError(Exception):
    """A message the stand-in cannot parse; the connection is closed, as MongoDB does."""


def parse_op_msg(body: bytes) -> tuple[int, dict[str, Any]]:
    """The flag bits and the command of an OP_MSG, with kind-1 document sequences merged in as lists."""
    (flags,) = struct.unpack_from("<I", body)
    end = len(body) - (4 if flags & CHECKSUM_PRESENT else 0)
    position = 4
    command: dict[str, Any] | None = None
    sequences: dict[str, list[dict[str, Any]]] = {}
    while position < end:
        kind = body[position]
        position += 1
        if kind == 0:
            (size,) = struct.unpack_from("<i", body, position)
            command = bson.decode(body[position : position + size], codec_options=CODEC)
            position += size
        elif kind == 1:
            (size,) = struct.unpack_from("<i", body, position)
            name_end = body.index(b"\x00", position + 4)
            name = body[position + 4 : name_end].decode()
            sequences.setdefault(name, []).extend(bson.decode_all(body[name_end + 1 : position + size], CODEC))
            position += size
        else:
            raise ProtocolError(f"unknown OP_MSG section kind {kind}")
    if command is None:
        raise ProtocolError("OP_MSG without a body section")
    return flags, {**command, **sequences}


def parse_op_query(body: bytes) -> dict[str, Any]:
    """The command of a legacy OP_QUERY on ``<db>.$cmd`` (PyMongo's first ``isMaster`` of a connection)."""
    name_end = body.index(b"\x00", 4)
    namespace = body[4:name_end].decode()
    position = name_end + 1 + 8  # numberToSkip, numberToReturn
    (size,) = struct.unpack_from("<i", body, position)
    query = bson.decode(body[position : position + size], codec_options=CODEC)
    if "$query" in query:  # the legacy wrapping that carries $readPreference beside the command
        query = query["$query"]
    database, _, collection = namespace.partition(".")
    if collection != "$cmd":
        raise ProtocolError(f"OP_QUERY on {namespace}: only commands are supported")
    return {**query, "$db": database}


def encode_reply(reply: dict[str, Any]) -> bytes:
    """The reply as BSON; a reply that cannot be encoded (or is too large) becomes an error reply instead."""
    try:
        encoded = bson.encode(reply, codec_options=CODEC)
    except (bson.errors.BSONError, OverflowError, TypeError) as error:
        log(f"reply not encodable: {error!r}")
        return bson.encode(error_reply(f"mongo stand-in could not encode the reply: {error}", 8))
    if len(encoded) > MAX_BSON_OBJECT_SIZE:
        return bson.encode(error_reply(f"reply of {len(encoded)} bytes exceeds the BSON size limit", 10334))
    return encoded


def op_msg(request_id: int, response_to: int, reply: dict[str, Any]) -> bytes:
    payload = struct.pack("<I", 0) + b"\x00" + encode_reply(reply)
    return HEADER.pack(HEADER.size + len(payload), request_id, response_to, OP_MSG) + payload


def op_reply(request_id: int, response_to: int, reply: dict[str, Any]) -> bytes:
    payload = struct.pack("<iqii", 0, 0, 0, 1) + encode_reply(reply)
    return HEADER.pack(HEADER.size + len(payload), request_id, response_to, OP_REPLY) + payload


class StandIn:
    """The TCP server: each connection reads messages in order and answers each before reading the next."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.request_ids = itertools.count(1)
        self.writers: set[asyncio.StreamWriter] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection_id = next(self.backend.next_connection_id)
        self.writers.add(writer)
        try:
            while True:
                header = await reader.readexactly(HEADER.size)
                length, request_id, _response_to, opcode = HEADER.unpack(header)
                if not HEADER.size <= length <= MAX_MESSAGE_SIZE:
                    raise ProtocolError(f"message length {length}")
                body = await reader.readexactly(length - HEADER.size)
                answer = self.answer(connection_id, request_id, opcode, body)
                if answer is not None:
                    writer.write(answer)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client hung up, which PyMongo does whenever it closes a pooled connection
        except (ProtocolError, struct.error, IndexError, UnicodeDecodeError, bson.errors.BSONError) as error:
            log(f"connection {connection_id} closed, malformed message: {error!r}")
        finally:
            self.writers.discard(writer)
            writer.close()

    def answer(self, connection_id: int, request_id: int, opcode: int, body: bytes) -> bytes | None:
        """The reply to one message, or ``None`` when the client asked for none (``moreToCome``)."""
        if opcode == OP_MSG:
            flags, command = parse_op_msg(body)
            reply = self.backend.run(command, connection_id)
            return None if flags & MORE_TO_COME else op_msg(next(self.request_ids), request_id, reply)
        if opcode == OP_QUERY:
            reply = self.backend.run(parse_op_query(body), connection_id)
            return op_reply(next(self.request_ids), request_id, reply)
        raise ProtocolError(f"unsupported opcode {opcode}")

    def close_connections(self) -> None:
        for writer in list(self.writers):
            writer.close()


async def main_async(host: str, port: int, log_commands: bool, dbpath: Path | None) -> None:
    backend = Backend(log_commands=log_commands)
    if dbpath is not None and dbpath.exists():
        backend.load(dbpath)
    stand_in = StandIn(backend)
    server = await asyncio.start_server(stand_in.serve, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bound_port = server.sockets[0].getsockname()[1]
    print(f"listening on {host}:{bound_port}", flush=True)
    async with server:
        await stop.wait()
        server.close()
        stand_in.close_connections()
        await server.wait_closed()
    if dbpath is not None:
        backend.save(dbpath)
    log("stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Test-only MongoDB wire-protocol stand-in backed by mongomock.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=27017, help="0 picks a free port (printed when ready)")
    parser.add_argument("--log-commands", action="store_true", help="log every command name to stderr")
    parser.add_argument("--dbpath", type=Path, help="keep the data in this file across a stop and a start")
    arguments = parser.parse_args(argv)
    asyncio.run(main_async(arguments.host, arguments.port, arguments.log_commands, arguments.dbpath))


if __name__ == "__main__":
    main()
