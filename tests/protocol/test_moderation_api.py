"""The moderator API over three replicas on one Redis and one store: mutes on every replica at once,
deleting any message, and who may call it (a moderator JWT, the service token, nobody else)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.protocol.test_http_docs import validate_openapi
from tests.protocol.test_resume import RECOVERED, frames_until_ready, resume
from tests.replicas.test_replicas_shared_store import shared_store_env
from tests.support.harness import ROOT, TEST_SECRET, Client, ServerProcess, token
from tools.cluster import Cluster

SERVICE_TOKEN = "moderation-suite-service-token"
LOG_TIMEOUT = 5.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, mongo_standin_url: str) -> Iterator[Cluster]:
    env = shared_store_env(mongo_standin_url, CHAT_INTERNAL_TOKEN=SERVICE_TOKEN)
    with Cluster(3, workdir=tmp_path_factory.mktemp("moderation"), env=env) as running:
        yield running


def moderator_token(player_id: str) -> str:
    return token(player_id, name="Mod", roles=["moderator"])


def bearer(credentials: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credentials}"}


async def call(
    cluster: Cluster, replica: int, method: str, path: str, credentials: str | None, **kwargs: Any
) -> httpx.Response:
    headers = bearer(credentials) if credentials is not None else {}
    async with httpx.AsyncClient(base_url=cluster.replicas[replica].url, headers=headers) as http:
        return await http.request(method, path, **kwargs)


async def on(cluster: Cluster, replica: int, credentials: str) -> Client:
    return await Client.open(cluster.replicas[replica].ws_url, credentials)


def muted_error(until: str, ref: str) -> dict[str, Any]:
    return {
        "error": [
            {
                "reason": "NOT_ALLOWED",
                "field": None,
                "value": None,
                "message": f"Player is muted until {until}",
                "additional": {"muted_until": until},
            }
        ],
        "ref": ref,
    }


async def logged(cluster: Cluster, replica: int, message: str) -> list[dict[str, Any]]:
    """The replica's JSON log entries with ``message``, waiting up to ``LOG_TIMEOUT`` for at least one."""
    deadline = asyncio.get_running_loop().time() + LOG_TIMEOUT
    while True:
        lines = cluster.replicas[replica].log_path.read_text(errors="replace").splitlines()
        entries = [json.loads(line) for line in lines if line.startswith("{")]
        found = [entry for entry in entries if entry.get("message") == message]
        if found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.05)


# --- mutes ---------------------------------------------------------------------------------------


async def test_a_moderator_mutes_a_player_whose_next_frame_on_another_replica_is_refused_until_unmuted(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    moderator, player = new_id(), new_id()
    client = await on(cluster, 1, token(player, clan_id=new_id()))
    posted = await client.post("global", "before the mute")

    created = await call(
        cluster, 0, "POST", "/chat/moderation/mutes", moderator_token(moderator),
        json={"player_id": player, "minutes": 10, "reason": "spam"},
    )  # fmt: skip

    assert created.status_code == 201, created.text
    mute = created.json()
    assert (mute["player_id"], mute["reason"], mute["moderator"]) == (player, "spam", moderator)
    until = mute["until"]
    await client.send({"event": "globalMessage", "ref": "m-1", "data": {"content": "still here?"}})
    assert await client.recv() == muted_error(until, "m-1")
    await client.send({"event": "clanMessage", "ref": "m-2", "data": {"content": "to my clan then"}})
    assert await client.recv() == muted_error(until, "m-2")
    other_socket = await on(cluster, 2, token(player))
    await other_socket.send(
        {"event": "globalMessageReaction", "ref": "r-1", "data": {"message_id": posted["_id"], "emoji": "👍"}}
    )
    assert await other_socket.recv() == muted_error(until, "r-1")
    for event, data in (
        ("globalMessageEdit", {"message_id": posted["_id"], "content": "edited"}),
        ("globalMessageDelete", {"message_id": posted["_id"]}),
        ("globalMessageReport", {"message_id": posted["_id"]}),
    ):
        await other_socket.send({"event": event, "ref": event, "data": data})
        assert await other_socket.recv() == muted_error(until, event)
    listed = await call(cluster, 2, "GET", "/chat/moderation/mutes", moderator_token(moderator))
    assert listed.status_code == 200 and mute in listed.json()["mutes"]

    lifted = await call(cluster, 2, "DELETE", f"/chat/moderation/mutes/{player}", moderator_token(moderator))

    assert (lifted.status_code, lifted.content) == (204, b"")
    assert (await client.post("global", "thanks"))["content"] == "thanks"
    listed = await call(cluster, 0, "GET", "/chat/moderation/mutes", SERVICE_TOKEN)
    assert [m for m in listed.json()["mutes"] if m["player_id"] == player] == []
    again = await call(cluster, 0, "DELETE", f"/chat/moderation/mutes/{player}", SERVICE_TOKEN)
    assert again.status_code == 404
    assert again.json()["errors"][0]["reason"] == "NOT_FOUND"
    muted_log = [e for e in await logged(cluster, 0, "moderator muted a player") if e.get("player_id") == player]
    assert [(e["moderator"], e["until"], e["reason"]) for e in muted_log] == [(moderator, until, "spam")]
    unmuted_log = [e for e in await logged(cluster, 2, "moderator unmuted a player") if e.get("player_id") == player]
    assert [e["moderator"] for e in unmuted_log] == [moderator]


async def test_the_service_token_mutes_as_service(cluster: Cluster, new_id: Callable[[], str]) -> None:
    player = new_id()

    created = await call(
        cluster, 1, "POST", "/chat/moderation/mutes", SERVICE_TOKEN, json={"player_id": player, "minutes": 1}
    )

    assert created.status_code == 201
    assert {key: created.json()[key] for key in ("player_id", "reason", "moderator")} == {
        "player_id": player,
        "reason": None,
        "moderator": "service",
    }
    client = await on(cluster, 0, token(player))
    await client.send({"event": "globalMessage", "ref": "x", "data": {"content": "hi"}})
    assert (await client.recv())["error"][0]["additional"] == {"muted_until": created.json()["until"]}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"player_id": "p", "minutes": 0}, ["minutes"]),
        ({"minutes": 5}, ["player_id"]),
        ({"player_id": "p", "minutes": "ten"}, ["minutes"]),
        ({"player_id": "p", "minutes": 5, "reason": "x" * 300}, ["reason"]),
        ({"player_id": "p", "minutes": 5, "until": "forever"}, ["until"]),
    ],
    ids=["zero-minutes", "no-player", "minutes-not-a-number", "reason-too-long", "unknown-field"],
)
async def test_a_bad_mute_request_is_400_naming_each_field(
    cluster: Cluster, body: dict[str, Any], fields: list[str]
) -> None:
    response = await call(cluster, 0, "POST", "/chat/moderation/mutes", SERVICE_TOKEN, json=body)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["reason"], e["field"]) for e in errors] == [("VALIDATION", field) for field in fields]


async def test_a_body_that_is_not_json_is_400(cluster: Cluster) -> None:
    response = await call(cluster, 0, "POST", "/chat/moderation/mutes", SERVICE_TOKEN, content=b"{not json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["reason"] == "VALIDATION"


# --- deleting any message ------------------------------------------------------------------------


async def test_a_moderator_deletes_any_message_and_every_socket_of_the_room_on_every_replica_hears_it(
    cluster: Cluster, new_id: Callable[[], str]
) -> None:
    clan, sender_id = new_id(), new_id()
    sender_token = token(sender_id, clan_id=clan)
    sender = await on(cluster, 1, sender_token)
    members = [await on(cluster, replica, token(new_id(), clan_id=clan)) for replica in (0, 2)]
    kept = await sender.post("clan", "this one stays")
    doomed = await sender.post("clan", "this one goes")
    for member in members:
        await member.recv()
        await member.recv()

    moderator = new_id()
    deleted = await call(cluster, 0, "DELETE", f"/chat/moderation/messages/{doomed['_id']}", moderator_token(moderator))

    assert (deleted.status_code, deleted.content) == (204, b"")
    frames = [await client.recv() for client in (sender, *members)]
    first = frames[0]
    assert first == {
        "chat": "clan",
        "event": "deletedMessage",
        "message": {
            "_id": doomed["_id"],
            "type": "clan",
            "clan_id": clan,
            "updatedAt": first["message"]["updatedAt"],
            "deletedAt": first["message"]["updatedAt"],
        },
    }
    assert frames == [first] * 3
    async with httpx.AsyncClient(base_url=cluster.replicas[2].url, headers=bearer(sender_token)) as http:
        page = (await http.get("/chat/history", params={"type": "clan"})).json()
    assert [m["_id"] for m in page["data"]["ChatMessage"]] == [kept["_id"]]
    assert page["paginationData"]["itemCount"] == 1
    reaction = await sender.react("clan", doomed["_id"], "👍")
    assert reaction["error"][0]["reason"] == "NOT_FOUND"
    again = await call(cluster, 2, "DELETE", f"/chat/moderation/messages/{doomed['_id']}", SERVICE_TOKEN)
    assert again.status_code == 404
    resumed = await resume(cluster.replicas[2].ws_url, sender_token, doomed["updatedAt"])
    replayed, ready = await frames_until_ready(resumed)
    assert (replayed, ready) == ([first], RECOVERED)
    entries = [e for e in await logged(cluster, 0, "moderator deleted a message") if e["message_id"] == doomed["_id"]]
    assert [(e["moderator"], e["player_id"], e["action"]) for e in entries] == [
        (moderator, sender_id, "message.deleted")
    ]


async def test_deleting_an_unknown_or_malformed_id_is_404_or_400(cluster: Cluster) -> None:
    unknown = await call(cluster, 0, "DELETE", f"/chat/moderation/messages/{secrets.token_hex(12)}", SERVICE_TOKEN)
    malformed = await call(cluster, 0, "DELETE", "/chat/moderation/messages/not-an-id", SERVICE_TOKEN)

    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["reason"] == "NOT_FOUND"
    assert malformed.status_code == 400
    assert malformed.json()["errors"][0] == {
        "reason": "VALIDATION",
        "field": "message_id",
        "value": "not-an-id",
        "message": "message_id must be a 24-character hex id",
        "additional": None,
    }


# --- who may call it -----------------------------------------------------------------------------

ROUTES = [
    ("DELETE", f"/chat/moderation/messages/{'a' * 24}", None),
    ("POST", "/chat/moderation/mutes", {"player_id": "p", "minutes": 5}),
    ("GET", "/chat/moderation/mutes", None),
    ("DELETE", "/chat/moderation/mutes/p", None),
    ("GET", "/chat/moderation/reports", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_a_player_token_is_403_and_no_or_a_bad_token_401(
    cluster: Cluster, method: str, path: str, body: dict[str, Any] | None
) -> None:
    player = await call(cluster, 1, method, path, token("someone", roles=["player"]), json=body)
    missing = await call(cluster, 1, method, path, None, json=body)
    forged = await call(cluster, 1, method, path, token("someone", roles=["moderator"], secret="x" * 40), json=body)

    assert (player.status_code, player.json()) == (
        403,
        {
            "errors": [
                {
                    "reason": "NOT_AUTHORIZED",
                    "field": "token",
                    "value": None,
                    "message": "The moderator role is required",
                    "additional": None,
                }
            ],
            "statusCode": 403,
        },
    )
    assert (missing.status_code, missing.json()["errors"][0]["reason"]) == (401, "NOT_AUTHENTICATED")
    assert (forged.status_code, forged.json()["errors"][0]["reason"]) == (401, "AUTHENTICATION_FAILED")


async def test_reports_are_listed_newest_first_and_a_bad_limit_is_400(cluster: Cluster) -> None:
    listed = await call(cluster, 0, "GET", "/chat/moderation/reports", SERVICE_TOKEN, params={"limit": "5"})
    bad = await call(cluster, 0, "GET", "/chat/moderation/reports", SERVICE_TOKEN, params={"limit": "many"})

    assert listed.status_code == 200 and isinstance(listed.json()["reports"], list)
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "limit"


async def test_the_openapi_document_describes_the_moderation_routes_with_examples(cluster: Cluster) -> None:
    document = (await call(cluster, 0, "GET", "/openapi.json", None)).json()
    validate_openapi(document)
    operations = {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        if path.startswith("/chat/moderation/")
        for method, operation in item.items()
    }

    assert set(operations) == {
        ("DELETE", "/chat/moderation/messages/{message_id}"),
        ("POST", "/chat/moderation/mutes"),
        ("GET", "/chat/moderation/mutes"),
        ("DELETE", "/chat/moderation/mutes/{player_id}"),
        ("GET", "/chat/moderation/reports"),
    }
    for operation in operations.values():
        assert operation["security"] == [{"bearer": []}, {"serviceToken": []}]
        assert {"401", "403"} <= set(operation["responses"])
    mute_request = operations["POST", "/chat/moderation/mutes"]["requestBody"]["content"]["application/json"]
    assert mute_request["example"] == {"player_id": "6650a1b2c3d4e5f6a7b8c9d0", "minutes": 30, "reason": "spam"}
    created = operations["POST", "/chat/moderation/mutes"]["responses"]["201"]["content"]["application/json"]
    assert set(created["example"]) == {"player_id", "until", "reason", "moderator"}
    schemas = document["components"]["schemas"]
    assert set(schemas["Mute"]["properties"]) == {"player_id", "until", "reason", "moderator"}
    assert set(schemas["EditData"]["properties"]) == {"message_id", "content"}
    assert set(schemas["MessageRefData"]["properties"]) == {"message_id"}
    assert set(schemas["ReportData"]["properties"]) == {"message_id", "reason"}
    assert set(schemas["DeletedMessage"]["properties"]) == {"_id", "type", "clan_id", "updatedAt", "deletedAt"}
    assert "editedMessage" in document["info"]["description"]


async def test_the_embedded_server_keeps_mutes_in_process(
    embedded_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    player, moderator = new_id(), moderator_token(new_id())
    client = await Client.connect(embedded_server, token(player))
    async with httpx.AsyncClient(base_url=embedded_server.http_url, headers=bearer(moderator)) as http:
        created = await http.post("/chat/moderation/mutes", json={"player_id": player, "minutes": 5})
        await client.send({"event": "globalMessage", "ref": "e-1", "data": {"content": "hello"}})
        assert await client.recv() == muted_error(created.json()["until"], "e-1")
        assert (await http.delete(f"/chat/moderation/mutes/{player}")).status_code == 204
    assert (await client.post("global", "hello again"))["content"] == "hello again"


async def test_a_malformed_entry_in_the_mute_registry_mutes_nobody(cluster: Cluster, new_id: Callable[[], str]) -> None:
    player = new_id()
    with redis.Redis.from_url(cluster.redis_url) as admin:
        admin.hset("chat:mutes", player, "not a mute")
    client = await on(cluster, 2, token(player))

    assert (await client.post("global", "still talking"))["content"] == "still talking"
    assert (await call(cluster, 0, "GET", "/chat/moderation/mutes", SERVICE_TOKEN)).status_code == 200


async def test_a_moderator_token_from_the_command_line_is_let_in(
    embedded_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAT_", "REDIS_", "MONGODB_", "JWT_"))}
    minted = subprocess.run(
        [sys.executable, "-m", "chatserver", "token", "--player-id", "mod-1", "--role", "moderator"],
        env={**env, "JWT_SECRET": TEST_SECRET},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert minted.returncode == 0, minted.stderr

    async with httpx.AsyncClient(base_url=embedded_server.http_url, headers=bearer(minted.stdout.strip())) as http:
        created = await http.post("/chat/moderation/mutes", json={"player_id": new_id(), "minutes": 1})

    assert (created.status_code, created.json()["moderator"]) == (201, "mod-1")
