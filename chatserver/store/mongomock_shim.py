"""The smallest shim that lets Beanie 2.x and ``MongoStore`` run on mongomock-motor (tests only).

``MongoStore`` opens this for ``mongomock://`` URLs, so the whole server can run on the in-process
stand-in without a MongoDB server. mongomock-motor is a test extra, not a runtime dependency, which is
why it is only imported here and only when asked for.

Everything the store does is plain driver calls that mongomock answers as MongoDB does, including the
aggregation-pipeline update behind reactions (``$set`` with ``$cond``/``$filter``/``$map``/
``$arrayElemAt``/``$concatArrays``/``$literal``), so nothing in the data path is re-implemented here.
Only two seams between the libraries need patching, both on the one client/database this returns
(never on mongomock's classes, so nothing else in the process is affected):

1. ``list_collection_names``: Beanie's ``init_beanie`` calls it with ``authorizedCollections=True,
   nameOnly=True`` (PyMongo options); mongomock's signature is ``(filter=None, session=None)`` and
   raises ``TypeError``. Both options only trim what the server returns, so dropping them is exact.
2. ``close``: PyMongo's ``AsyncMongoClient.close`` is a coroutine, mongomock's is a plain method.
   Making it awaitable keeps ``MongoStore.close`` the same code for both.

Two mongomock gaps are avoided in how the pipeline is written rather than patched, because the way
around each is also the right MongoDB expression: mongomock does not evaluate expressions inside an
array literal (the new reaction is one ``$literal`` array, which also keeps client text from being read
as a field path), and it fails on a missing field inside ``$eq``/``$ne`` (old reactions without a
``sender_id`` go through ``$ifNull``, which is also how the old backend reads them: ``legacy_system``).

Outages: ``arm_outage`` makes the stand-in fail as an unreachable server does (PyMongo's
``ServerSelectionTimeoutError`` from every call) while a file exists, so a test can take "MongoDB"
down and bring it back under a running server process.

Not verifiable on this stand-in (it runs each operation to completion under the event loop, in one
thread): real concurrent write atomicity, index use by the query planner, timeouts and failover.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bson import json_util
from pymongo.errors import ServerSelectionTimeoutError


def open_mock_database(name: str) -> tuple[Any, Any]:
    """A fresh, empty in-process client and its database ``name``, patched for Beanie."""
    try:
        from mongomock_motor import AsyncMongoMockClient
    except ImportError as error:
        raise RuntimeError("mongomock:// URLs need the test extra: pip install -e '.[test]'") from error

    client: Any = AsyncMongoMockClient()
    database = client[name]
    _accept_beanie_listing_options(database)
    _awaitable_close(client)
    return client, database


async def load_seed(database: Any, path: Path) -> None:
    """Insert the documents of an Extended JSON file ``{"<collection>": [documents...]}``.

    A server process on the stand-in cannot share memory with its test, so this is how a test hands
    it data (the game's ``Player`` collection, say).
    """
    for collection, documents in json_util.loads(path.read_text()).items():
        if documents:
            await database[collection].insert_many(documents)


def _accept_beanie_listing_options(database: Any) -> None:
    """Patch 1: drop the PyMongo-only options Beanie passes to ``list_collection_names``."""
    list_collection_names = database.list_collection_names

    async def patched(filter: dict[str, Any] | None = None, session: Any = None, **_options: Any) -> list[str]:
        names: list[str] = await list_collection_names(filter=filter, session=session)
        return names

    database.list_collection_names = patched


def _awaitable_close(client: Any) -> None:
    """Patch 2: ``await client.close()`` as with PyMongo's asynchronous client."""
    close = client.close

    async def patched() -> None:
        close()

    client.close = patched


def arm_outage(database: Any, collections: list[Any], flag: Path) -> None:
    """While ``flag`` exists, every call on ``database`` and ``collections`` raises as an unreachable server.

    The methods are replaced on these instances only, with wrappers that check the flag when called
    (a cursor-returning ``find`` fails at the call as well as an awaited ``insert_one``).
    """
    for target in (database, *collections):
        for name in dir(target):
            method = getattr(target, name, None)
            if not name.startswith("_") and callable(method) and not isinstance(method, type):
                setattr(target, name, _failing_while(flag, method))


def _failing_while(flag: Path, method: Any) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        if flag.exists():
            raise ServerSelectionTimeoutError(f"stand-in outage: {flag} exists")
        return method(*args, **kwargs)

    return call
