"""A MongoDB outage under a running server, as its clients and its load balancer see it.

The server runs on a MongoDB stand-in of its own, which the test stops (every store call then fails as
with an unreachable MongoDB: PyMongo's ServerSelectionTimeoutError) and starts again on the same port
with the data it held, so the outage and the recovery happen under the same chat server process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.harness import Client, ServerProcess, token
from tests.support.standin_fixtures import MongoStandIn

STORE_DOWN = {
    "reason": "NOT_AVAILABLE",
    "field": None,
    "value": None,
    "message": "Message storage is not available right now; try again shortly",
    "additional": None,
}
ALL_UP = {"store": True, "broker": True, "accepting": True}


@pytest.fixture
def mongodb(tmp_path: Path) -> Iterator[MongoStandIn]:
    with MongoStandIn(tmp_path, durable=True) as stand_in:
        yield stand_in


@pytest.fixture
def server_on_flaky_store(tmp_path: Path, mongodb: MongoStandIn) -> Iterator[ServerProcess]:
    # A short server selection timeout: each store call in the outage fails after it.
    url = f"{mongodb.url}&serverSelectionTimeoutMS=1500"
    server = ServerProcess(env={"MONGODB_URL": url, "CHAT_PLAYERS_FROM_DB": "false"})
    try:
        yield server.start(tmp_path)
    finally:
        server.stop()


async def readiness(server: ServerProcess) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{server.http_url}/readyz")
    return answer.status_code, answer.json()


async def test_while_mongodb_is_down_senders_get_not_available_nothing_is_broadcast_and_it_recovers(
    server_on_flaky_store: ServerProcess, mongodb: MongoStandIn, new_id: Callable[[], str]
) -> None:
    server, clan = server_on_flaky_store, new_id()
    sender = await Client.connect(server, token(new_id(), clan_id=clan))
    reader = await Client.connect(server, token(new_id(), clan_id=clan))
    before = await sender.post("clan", "before the outage")
    assert (await reader.recv())["message"] == before

    mongodb.stop()
    status, body = await readiness(server)
    assert (status, body) == (
        503,
        {"status": "unavailable", "checks": {"store": False, "broker": True, "accepting": True}},
    )
    await sender.send({"event": "clanMessage", "data": {"content": "lost in the outage"}, "ref": "m1"})
    assert await sender.recv() == {"error": [STORE_DOWN], "ref": "m1"}
    await sender.send({"event": "clanMessageReaction", "data": {"message_id": before["_id"], "emoji": "🔥"}})
    assert await sender.recv() == {"error": [STORE_DOWN]}
    headers = {"Authorization": f"Bearer {token(new_id(), clan_id=clan)}"}
    async with httpx.AsyncClient() as http:
        history = await http.get(f"{server.http_url}/chat/history?type=clan", headers=headers)
    assert history.status_code == 503
    assert history.json() == {
        "errors": [{**STORE_DOWN, "message": "Message history is not available right now; try again shortly"}],
        "statusCode": 503,
    }

    mongodb.start()
    assert await readiness(server) == (
        200,
        {"status": "ok", "checks": {"store": True, "broker": True, "accepting": True}},
    )
    after = await sender.post("clan", "after the outage")
    assert (await reader.recv())["message"] == after, "the reader's next frame: nothing from the outage"
    async with httpx.AsyncClient() as http:
        history = await http.get(f"{server.http_url}/chat/history?type=clan", headers=headers)
    assert history.json()["data"]["ChatMessage"] == [after, before]
