"""Connecting to /ws/chat: the token in header or query, refusals during the handshake, the ready frame."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.conftest import ServerFactory
from tests.support.harness import TEST_SECRET, Client, ServerProcess, refusal, token


def token_error(reason: str, message: str) -> dict[str, Any]:
    return {"error": [{"reason": reason, "field": "token", "value": None, "message": message, "additional": None}]}


async def test_token_in_query_gets_ready(server: ServerProcess, new_id: Callable[[], str]) -> None:
    await Client.connect(server, token(new_id()), via="query")


async def test_token_in_authorization_header_gets_ready(server: ServerProcess, new_id: Callable[[], str]) -> None:
    await Client.connect(server, token(new_id()), via="header")


async def test_header_wins_over_query(embedded_server: ServerProcess, new_id: Callable[[], str]) -> None:
    headers = {"Authorization": f"Bearer {token(new_id())}"}
    async with websockets.connect(f"{embedded_server.ws_url}?token=garbage", additional_headers=headers) as ws:
        assert json.loads(await ws.recv()) == {"event": "ready", "data": True}


async def test_missing_token_is_refused_with_401(embedded_server: ServerProcess) -> None:
    status, body = await refusal(embedded_server.ws_url)
    assert (status, body) == (401, token_error("NOT_AUTHENTICATED", "The access token is not provided"))


async def test_malformed_token_is_refused_with_401(embedded_server: ServerProcess) -> None:
    status, body = await refusal(f"{embedded_server.ws_url}?token=not.a.jwt")
    assert (status, body) == (401, token_error("AUTHENTICATION_FAILED", "The access token is invalid"))


async def test_wrongly_signed_token_is_refused_with_401(
    embedded_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    forged = token(new_id(), secret="some-other-secret-entirely-0123456789")
    status, body = await refusal(embedded_server.ws_url, {"Authorization": f"Bearer {forged}"})
    assert (status, body) == (401, token_error("AUTHENTICATION_FAILED", "The access token is invalid"))


async def test_expired_token_is_refused_with_401(embedded_server: ServerProcess, new_id: Callable[[], str]) -> None:
    expired = token(new_id(), exp_in=-60)
    status, body = await refusal(f"{embedded_server.ws_url}?token={expired}")
    assert (status, body) == (401, token_error("AUTHENTICATION_FAILED", "The access token is expired"))


async def test_unsigned_alg_none_token_is_refused(embedded_server: ServerProcess, new_id: Callable[[], str]) -> None:
    unsigned = jwt.encode({"player_id": new_id()}, None, algorithm="none")  # type: ignore[arg-type]
    status, body = await refusal(f"{embedded_server.ws_url}?token={unsigned}")
    assert (status, body) == (401, token_error("AUTHENTICATION_FAILED", "The access token is invalid"))


async def test_token_signed_with_another_hmac_algorithm_is_refused(
    embedded_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    other = jwt.encode({"player_id": new_id(), "exp": int(time.time()) + 60}, TEST_SECRET, algorithm="HS512")
    status, body = await refusal(f"{embedded_server.ws_url}?token={other}")
    assert (status, body) == (401, token_error("AUTHENTICATION_FAILED", "The access token is invalid"))


async def test_token_with_a_string_exp_is_refused(embedded_server: ServerProcess, new_id: Callable[[], str]) -> None:
    """A string ``exp`` would pass PyJWT's check yet set no expiry timer: the socket would outlive its token."""
    odd = jwt.encode({"player_id": new_id(), "exp": str(int(time.time()) + 60)}, TEST_SECRET, algorithm="HS256")
    status, body = await refusal(f"{embedded_server.ws_url}?token={odd}")
    assert (status, body) == (401, token_error("AUTHENTICATION_FAILED", "The access token is invalid"))


async def test_token_without_player_id_is_refused(embedded_server: ServerProcess) -> None:
    no_player = jwt.encode({"profile_id": "p", "exp": int(time.time()) + 60}, TEST_SECRET, algorithm="HS256")
    status, body = await refusal(f"{embedded_server.ws_url}?token={no_player}")
    assert (status, body) == (401, token_error("AUTHENTICATION_FAILED", "The access token has no player_id"))


async def test_frames_sent_before_ready_are_processed_after_the_join(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    async with websockets.connect(f"{server.ws_url}?token={token(new_id(), name='Early', clan_id=clan)}") as ws:
        await ws.send(json.dumps({"event": "clanMessage", "data": {"content": "first words"}}))
        assert json.loads(await ws.recv()) == {"event": "ready", "data": True}
        frame = json.loads(await ws.recv())
        assert (frame["chat"], frame["event"], frame["message"]["content"]) == ("clan", "newMessage", "first words")


async def test_unknown_path_is_not_a_chat_socket(embedded_server: ServerProcess, new_id: Callable[[], str]) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(f"ws://127.0.0.1:{embedded_server.port}/ws/chatXYZ?token={token(new_id())}"):
            pass
    assert refused.value.response.status_code == 403


async def test_valid_token_of_a_player_missing_from_the_game_database_is_refused_with_404(
    server_factory: ServerFactory, mongo_standin_url: str, new_id: Callable[[], str]
) -> None:
    game_db_server = server_factory(
        MONGODB_URL=mongo_standin_url, MONGODB_DB=f"game_test_{new_id()}", CHAT_PLAYERS_FROM_DB="true"
    )
    player = new_id()
    status, body = await refusal(f"{game_db_server.ws_url}?token={token(player)}")
    assert (status, body) == (
        404,
        {
            "error": [
                {
                    "reason": "NOT_FOUND",
                    "field": "player_id",
                    "value": player,
                    "message": "Player not found",
                    "additional": None,
                }
            ]
        },
    )
