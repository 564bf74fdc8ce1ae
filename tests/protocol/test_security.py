"""Security over real sockets: JWT pinning, operator injection, the service token, allowed origins, secrets in logs.

tests/protocol/test_ws_connect.py already refuses ``alg: none``, a foreign secret, HS512 and a token without
``player_id``; this file covers what it does not.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
import websockets

from tests.conftest import ServerFactory
from tests.support.harness import TEST_SECRET, Client, ServerProcess, refusal, token, wait_for_log

CONTENT_NOT_STRING = {
    "reason": "NOT_STRING",
    "field": "content",
    "value": None,
    "message": "content must be a string",
    "additional": None,
}

SERVICE_TOKEN = "service-token-for-the-security-tests-0123456789"
ALLOWED_ORIGIN = "https://altzone.fi"
INJECTIONS: list[Any] = [{"$ne": None}, {"$gt": ""}, {"$regex": ".*"}, {"$where": "1"}, ["$ne", None]]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], claims: dict[str, Any], key: bytes, digest: Any = hashlib.sha256) -> str:
    """A JWT built by hand, so its header can claim any algorithm whatever signed it."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def token_error(message: str) -> dict[str, Any]:
    return {
        "error": [
            {"reason": "AUTHENTICATION_FAILED", "field": "token", "value": None, "message": message, "additional": None}
        ]
    }


def history(server: ServerProcess, bearer: str, chat: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{server.http_url}/chat/history", params={"type": chat}, headers={"Authorization": f"Bearer {bearer}"}
    )
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["data"]["ChatMessage"]
    return messages


# --- JWT algorithm pinning and claims ------------------------------------------------------------


async def test_rs256_header_signed_with_the_hmac_secret_is_refused(
    embedded_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    """Algorithm confusion: the secret used as if it were an RSA public key; the pinned HS256 ignores the header."""
    claims = {"player_id": new_id(), "exp": int(time.time()) + 60}
    forged = hand_signed({"alg": "RS256", "typ": "JWT"}, claims, TEST_SECRET.encode())
    status, body = await refusal(f"{embedded_server.ws_url}?token={forged}")
    assert (status, body) == (401, token_error("The access token is invalid"))


async def test_hand_built_hs256_token_with_the_right_secret_is_accepted(
    embedded_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    """The control for the forgeries here: the same hand-built token with the honest header connects."""
    claims = {"player_id": new_id(), "exp": int(time.time()) + 60}
    honest = hand_signed({"alg": "HS256", "typ": "JWT"}, claims, TEST_SECRET.encode())
    await Client.connect(embedded_server, honest)


@pytest.mark.parametrize(
    "header",
    [{"alg": "HS512", "typ": "JWT"}, {"alg": "HS256", "typ": "JWT", "crit": ["b64"], "b64": False}],
    ids=["hs512-header-over-hs256-signature", "unknown-critical-header"],
)
async def test_header_that_lies_about_the_signature_is_refused(
    embedded_server: ServerProcess, new_id: Callable[[], str], header: dict[str, Any]
) -> None:
    claims = {"player_id": new_id(), "exp": int(time.time()) + 60}
    forged = hand_signed(header, claims, TEST_SECRET.encode())
    status, body = await refusal(f"{embedded_server.ws_url}?token={forged}")
    assert (status, body) == (401, token_error("The access token is invalid"))


@pytest.mark.parametrize("player_id", [12345, None, "", ["p"], {"$ne": None}, True], ids=repr)
async def test_token_whose_player_id_is_not_a_non_empty_string_is_refused(
    embedded_server: ServerProcess, player_id: Any
) -> None:
    bad = jwt.encode({"player_id": player_id, "exp": int(time.time()) + 60}, TEST_SECRET, algorithm="HS256")
    status, body = await refusal(embedded_server.ws_url, {"Authorization": f"Bearer {bad}"})
    assert (status, body) == (401, token_error("The access token has no player_id"))


async def test_server_pinned_to_hs512_refuses_an_hs256_token_and_accepts_its_own(
    server_factory: ServerFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory(JWT_ALGORITHM="HS512")
    status, body = await refusal(f"{server.ws_url}?token={token(new_id())}")
    assert (status, body) == (401, token_error("The access token is invalid"))
    own = jwt.encode({"player_id": new_id(), "exp": int(time.time()) + 60}, TEST_SECRET, algorithm="HS512")
    await Client.connect(server, own)


# --- operator injection: refused with the field's reason, nothing stored -------------------------


@pytest.mark.parametrize("injection", INJECTIONS, ids=json.dumps)
async def test_operator_objects_in_message_fields_are_refused_and_nothing_is_stored(
    server: ServerProcess, new_id: Callable[[], str], injection: Any
) -> None:
    clan = new_id()
    bearer = token(new_id(), name="Mallory", clan_id=clan)
    client = await Client.connect(server, bearer)

    await client.send({"event": "clanMessage", "data": {"content": injection}, "ref": "c"})
    assert await client.recv() == {
        "error": [CONTENT_NOT_STRING],
        "ref": "c",
    }
    await client.send({"event": "clanMessage", "data": {"content": "hello", "feeling": injection}})
    assert await client.recv() == {
        "error": [
            {
                "reason": "NOT_STRING",
                "field": "feeling",
                "value": None,
                "message": "feeling must be a string",
                "additional": None,
            }
        ]
    }
    assert history(server, bearer, "clan") == []


@pytest.mark.parametrize("injection", INJECTIONS, ids=json.dumps)
async def test_operator_objects_in_reaction_fields_are_refused_and_change_nothing(
    server: ServerProcess, new_id: Callable[[], str], injection: Any
) -> None:
    clan = new_id()
    bearer = token(new_id(), name="Mallory", clan_id=clan)
    client = await Client.connect(server, bearer)
    target = await client.post("clan", "leave my reactions alone")

    await client.send({"event": "clanMessageReaction", "data": {"message_id": injection, "emoji": "🔥"}})
    assert await client.recv() == {
        "error": [
            {
                "reason": "VALIDATION",
                "field": "message_id",
                "value": None,
                "message": "message_id must be a 24-character hex id",
                "additional": None,
            }
        ]
    }
    await client.send({"event": "clanMessageReaction", "data": {"message_id": target["_id"], "emoji": injection}})
    assert await client.recv() == {
        "error": [
            {
                "reason": "VALIDATION",
                "field": "emoji",
                "value": None,
                "message": "emoji must be a single emoji",
                "additional": None,
            }
        ]
    }
    assert history(server, bearer, "clan") == [target]


@pytest.mark.parametrize(
    "frame",
    [
        '{"event":"clanMessage","data":{"content":"poison \\ud800"}}',
        '{"event":"clanMessage","data":{"content":"ok","feeling":"\\udfff"}}',
        '{"event":"clanMessage","data":{"content":"ok"},"ref":"\\ud83d"}',
        '{"event":"\\udc00","data":{}}',
        '{"event":"clanMessageReaction","data":{"message_id":"\\ud800","emoji":"x"}}',
    ],
    ids=["content", "feeling", "ref", "event", "message_id"],
)
async def test_a_lone_surrogate_is_invalid_json_and_never_poisons_the_room(
    server: ServerProcess, new_id: Callable[[], str], frame: str
) -> None:
    """Half a surrogate pair cannot be encoded: stored, it broke every history read of the room (500);
    echoed in an error frame, it killed the socket. It is refused as invalid JSON before either."""
    clan = new_id()
    bearer = token(new_id(), name="Mallory", clan_id=clan)
    client = await Client.connect(server, bearer)
    await client.send(frame)
    assert await client.recv() == {"error": "Invalid JSON"}
    assert history(server, bearer, "clan") == []
    assert (await client.post("clan", "still here"))["content"] == "still here"


async def test_nesting_deeper_than_the_decoder_allows_is_invalid_json(
    embedded_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    client = await Client.connect(embedded_server, token(new_id()))
    await client.send("[" * 3000 + "]" * 3000)
    assert await client.recv() == {"error": "Invalid JSON"}
    await client.send('{"event":"globalMessage","data":{"content":' + "[" * 1500 + "]" * 1500 + "}}")
    assert await client.recv() == {"error": "Invalid JSON"}


async def test_a_huge_number_is_not_reflected_in_the_error(
    embedded_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    client = await Client.connect(embedded_server, token(new_id()))
    await client.send('{"event":"globalMessage","data":{"content":' + "9" * 4000 + "}}")
    assert await client.recv() == {"error": [CONTENT_NOT_STRING]}


# --- the internal service token ------------------------------------------------------------------


@pytest.fixture(scope="module")
def internal_server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(CHAT_INTERNAL_TOKEN=SERVICE_TOKEN)


@pytest.mark.parametrize(
    "presented",
    [
        "x" * len(SERVICE_TOKEN),
        SERVICE_TOKEN[:-1] + ("0" if SERVICE_TOKEN[-1] != "0" else "1"),
        SERVICE_TOKEN[:-1],
        SERVICE_TOKEN + "0",
        "short",
        SERVICE_TOKEN.upper(),
        "ß" * len(SERVICE_TOKEN),
    ],
    ids=["same-length", "last-char-differs", "prefix", "longer", "different-length", "upper-case", "non-ascii"],
)
def test_membership_with_a_wrong_service_token_is_403(internal_server: ServerProcess, presented: str) -> None:
    """Wrong tokens of every length are refused alike (hmac.compare_digest in chatserver/http.py)."""
    response = httpx.post(
        f"{internal_server.http_url}/internal/membership",
        json={"player_id": "p", "action": "leave", "clan_id": "c"},
        headers={b"Authorization": f"Bearer {presented}".encode()},
        timeout=5,
    )
    assert (response.status_code, response.json()) == (
        403,
        {
            "errors": [
                {
                    "reason": "NOT_AUTHORIZED",
                    "field": "token",
                    "value": None,
                    "message": "The service token is not valid",
                    "additional": None,
                }
            ],
            "statusCode": 403,
        },
    )


def test_the_right_service_token_is_accepted(internal_server: ServerProcess) -> None:
    response = httpx.post(
        f"{internal_server.http_url}/internal/membership",
        json={"player_id": "p", "action": "leave", "clan_id": "c"},
        headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
        timeout=5,
    )
    assert (response.status_code, response.json()) == (202, {"player_id": "p", "action": "leave", "clan_id": "c"})


# --- allowed origins -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def origin_server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(CHAT_ALLOWED_ORIGINS=ALLOWED_ORIGIN)


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "null", "https://altzone.fi.evil.example", "http://altzone.fi", "https://altzone.fi:444"],
)
async def test_browser_origin_not_in_the_list_is_refused_with_403(
    origin_server: ServerProcess, new_id: Callable[[], str], origin: str
) -> None:
    status, body = await refusal(
        f"{origin_server.ws_url}?token={token(new_id())}", {"Origin": origin} if origin else None
    )
    assert (status, body) == (
        403,
        {
            "error": [
                {
                    "reason": "NOT_AUTHORIZED",
                    "field": "origin",
                    "value": origin,
                    "message": "This origin may not connect",
                    "additional": None,
                }
            ]
        },
    )


async def test_allowed_origin_and_no_origin_are_accepted(
    origin_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    async with websockets.connect(
        f"{origin_server.ws_url}?token={token(new_id())}", additional_headers={"Origin": ALLOWED_ORIGIN}
    ) as browser:
        assert json.loads(await browser.recv()) == {"event": "ready", "data": True}
    # A game client sends no Origin header at all (websockets adds none unless asked).
    game = await Client.connect(origin_server, token(new_id()))
    assert (await game.post("global", "from the game"))["content"] == "from the game"


async def test_a_refused_origin_is_refused_before_the_token_is_read(origin_server: ServerProcess) -> None:
    status, body = await refusal(origin_server.ws_url, {"Origin": "https://evil.example"})
    assert status == 403 and body["error"][0]["field"] == "origin"


# --- secrets never logged ------------------------------------------------------------------------


async def test_refused_tokens_service_tokens_and_the_jwt_secret_never_reach_the_log(
    server_factory: ServerFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory(CHAT_INTERNAL_TOKEN=SERVICE_TOKEN)
    refused = {
        "expired": token(new_id(), exp_in=-60),
        "foreign": token(new_id(), secret="another-secret-entirely-0123456789-abcdefghij"),
        "no-player": jwt.encode({"profile_id": "x"}, TEST_SECRET, algorithm="HS256"),
        "rs256": hand_signed({"alg": "RS256"}, {"player_id": new_id()}, TEST_SECRET.encode()),
    }
    for bearer in refused.values():
        status, _ = await refusal(f"{server.ws_url}?token={bearer}")
        assert status == 401
        status, _ = await refusal(server.ws_url, {"Authorization": f"Bearer {bearer}"})
        assert status == 401
    wrong_service = "guessed-service-token-0123456789-abcdefghijk"
    httpx.post(
        f"{server.http_url}/internal/membership",
        json={"player_id": "p", "action": "leave", "clan_id": "c"},
        headers={"Authorization": f"Bearer {wrong_service}"},
        timeout=5,
    )
    httpx.get(f"{server.http_url}/chat/history?token={refused['expired']}", timeout=5)

    deadline = time.monotonic() + 5
    while server.log().count("401") < 2 * len(refused) and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log()
    assert log.count("connection refused") >= 2 * len(refused), log[-2000:]
    for secret in (TEST_SECRET, SERVICE_TOKEN, wrong_service):
        assert secret not in log
    for bearer in refused.values():
        header, claims, signature = bearer.split(".")
        assert claims not in log and signature not in log


@pytest.mark.parametrize("name", ["%74oken", "tok%65n", "%74%6F%6B%65%6E"])
async def test_a_token_under_a_percent_encoded_query_name_authenticates_and_is_redacted(
    server_factory: ServerFactory, new_id: Callable[[], str], name: str
) -> None:
    server = server_factory()
    accepted = token(new_id(), name="Aino")
    refused = token(new_id(), secret="not-the-server-secret-but-long-enough-0123456789")

    async with websockets.connect(f"{server.ws_url}?{name}={accepted}") as socket:
        assert json.loads(await socket.recv()) == {"event": "ready", "data": True}
    status, _ = await refusal(f"{server.ws_url}?since=2026-01-01T00:00:00Z&{name}={refused}")
    assert status == 401

    await wait_for_log(server, lambda e: e["message"].endswith(f'"WebSocket /ws/chat?{name}=[redacted]" [accepted]'))
    refused_line = f'"WebSocket /ws/chat?since=2026-01-01T00:00:00Z&{name}=[redacted]" 401'
    await wait_for_log(server, lambda e: e["message"].endswith(refused_line))
    for secret in (accepted, refused):
        header, claims, signature = secret.split(".")
        assert claims not in server.log() and signature not in server.log()


async def test_a_client_offering_permessage_deflate_gets_uncompressed_frames(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    async with websockets.connect(f"{server.ws_url}?token={token(new_id())}", compression="deflate") as socket:
        assert socket.response is not None
        assert "Sec-WebSocket-Extensions" not in socket.response.headers
        assert socket.protocol.extensions == []
        assert json.loads(await socket.recv()) == {"event": "ready", "data": True}
        await socket.send(json.dumps({"event": "globalMessage", "data": {"content": "plain frames"}}))
        assert json.loads(await socket.recv())["message"]["content"] == "plain frames"
