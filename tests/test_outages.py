"""A MongoDB outage under a running server, as its clients and its load balancer see it.

The server runs on the mongomock stand-in with ``?outage=<file>``: while the file exists every store
call fails as an unreachable MongoDB does (PyMongo's ServerSelectionTimeoutError), so the outage and
the recovery happen under the same process, with no restart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.harness import Client, ServerProcess, token

STORE_DOWN = {
    "reason": "NOT_AVAILABLE",
    "field": None,
    "value": None,
    "message": "Message storage is not available right now; try again shortly",
    "additional": None,
}
ALL_UP = {"store": True, "broker": True, "accepting": True}


@pytest.fixture
def outage_flag(tmp_path: Path) -> Path:
    return tmp_path / "mongodb-is-down"


@pytest.fixture
def server_on_flaky_store(server_factory: ServerFactory, outage_flag: Path) -> ServerProcess:
    return server_factory(MONGODB_URL=f"mongomock://?outage={outage_flag}", CHAT_PLAYERS_FROM_DB="false")


async def readiness(server: ServerProcess) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{server.http_url}/readyz")
    return answer.status_code, answer.json()


async def test_while_mongodb_is_down_senders_get_not_available_nothing_is_broadcast_and_it_recovers(
    server_on_flaky_store: ServerProcess, outage_flag: Path, new_id: Callable[[], str]
) -> None:
    server, clan = server_on_flaky_store, new_id()
    sender = await Client.connect(server, token(new_id(), clan_id=clan))
    reader = await Client.connect(server, token(new_id(), clan_id=clan))
    before = await sender.post("clan", "before the outage")
    assert (await reader.recv())["message"] == before

    outage_flag.touch()
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

    outage_flag.unlink()
    assert await readiness(server) == (
        200,
        {"status": "ok", "checks": {"store": True, "broker": True, "accepting": True}},
    )
    after = await sender.post("clan", "after the outage")
    assert (await reader.recv())["message"] == after, "the reader's next frame: nothing from the outage"
    async with httpx.AsyncClient() as http:
        history = await http.get(f"{server.http_url}/chat/history?type=clan", headers=headers)
    assert history.json()["data"]["ChatMessage"] == [after, before]
