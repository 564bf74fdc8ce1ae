"""The shipped game client and wiki clients on one server: each socket gets only what its dialect parses.

Every frame a game socket receives goes through ``tests.support.game_client``'s model of the C# receive
rules, which raises where the shipped client would throw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from chatserver.protocol.outbound import RENDERERS
from chatserver.protocol.vocabulary import Dialect
from tests.conftest import ServerFactory
from tests.support.game_client import ClientWouldThrow, GameClient, check_history, handle_message
from tests.support.harness import Client, ServerProcess, post_membership, suite_env, token
from tools.cluster import Cluster

SERVICE_TOKEN = "game-dialect-service-token"
GAME = "altzone-chat.game"
WIKI = "altzone-chat.wiki"
MOOD_NAMES = "Happy, Sad, Neutral, Love, Thinking, Wink, Angry, None"


@pytest.fixture(scope="module")
def game_server(server_factory: ServerFactory) -> ServerProcess:
    """A game deployment: game dialect by default, the game's vocabulary of feelings and reactions."""
    return server_factory(CHAT_DIALECT="game", CHAT_INTERNAL_TOKEN=SERVICE_TOKEN)


@pytest.fixture(scope="module")
def wiki_server(server_factory: ServerFactory) -> ServerProcess:
    """A wiki deployment (the default) that game sockets join by asking for the game subprotocol."""
    return server_factory(CHAT_INTERNAL_TOKEN=SERVICE_TOKEN)


def history(server: ServerProcess, bearer: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{server.http_url}/chat/history", params=params, headers={"Authorization": f"Bearer {bearer}"}, timeout=5
    )


def move(base_url: str, player: str, action: str, clan: str) -> None:
    post_membership(base_url, SERVICE_TOKEN, player, action, clan)


# --- the client model itself ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        {"event": "ready", "data": True},
        {"error": "Invalid JSON"},
        {"error": [{"reason": "TOO_MANY_REQUESTS", "field": None, "value": None, "message": "x", "additional": None}]},
        {"event": "clanLeft", "data": {"clan_id": "c"}},
        {"chat": "global", "event": "newMessage", "message": {}},
    ],
    ids=["ready", "error", "error-list", "clanLeft", "unwrapped"],
)
def test_the_model_throws_where_the_shipped_client_throws(frame: dict[str, object]) -> None:
    with pytest.raises(ClientWouldThrow):
        handle_message(json.dumps(frame))


def test_the_model_skips_what_the_shipped_client_skips() -> None:
    assert handle_message('{"event": "ready", "data": true}\n') is None
    assert handle_message("{not json}") is None
    assert handle_message("plain text") is None


# --- negotiation ----------------------------------------------------------------------------------


async def test_the_game_subprotocol_is_echoed_and_gets_no_ready(
    wiki_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    game = await GameClient.open(wiki_server.ws_url, token(new_id()), subprotocol=GAME)
    assert game.connection.subprotocol == GAME
    assert await game.quiet() == [] and game.skipped == []


async def test_the_wiki_subprotocol_is_echoed_and_gets_ready(
    game_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    connection = await websockets.connect(
        f"{game_server.ws_url}?token={token(new_id())}", subprotocols=[Subprotocol(WIKI)]
    )
    try:
        assert connection.subprotocol == WIKI
        assert json.loads(await asyncio.wait_for(connection.recv(), 5)) == {"event": "ready", "data": True}
    finally:
        await connection.close()


async def test_an_unknown_subprotocol_is_refused_with_400_and_the_error_body(
    wiki_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(f"{wiki_server.ws_url}?token={token(new_id())}", subprotocols=[Subprotocol("mqtt")])
    assert refused.value.response.status_code == 400
    assert json.loads(refused.value.response.body or b"") == {
        "error": [
            {
                "reason": "WRONG_ENUM",
                "field": "Sec-WebSocket-Protocol",
                "value": "mqtt",
                "message": f"Sec-WebSocket-Protocol must name one of {WIKI}, {GAME}",
                "additional": {"allowed": [WIKI, GAME]},
            }
        ]
    }


# --- a game deployment ----------------------------------------------------------------------------


async def test_the_five_mood_reactions_are_stored_and_broadcast(
    game_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    game = await GameClient.open(game_server.ws_url, token(new_id(), name="Gamer", clan_id=clan))
    wiki = await Client.connect(game_server, token(new_id(), clan_id=clan), subprotocol=WIKI)
    message = await game.post("clan", "   hi from unity   ", feeling="Love")
    assert (message["content"], message["feeling"], message["reactions"]) == ("hi from unity", "Love", [])
    assert (await wiki.recv())["message"]["feeling"] == "Love"
    for mood in ("Happy", "Sad", "Love", "Wink", "Angry"):
        reacted = await game.react("clan", message["_id"], mood)
        assert [r["emoji"] for r in reacted["reactions"]] == [mood]
        assert [r["emoji"] for r in (await wiki.recv())["message"]["reactions"]] == [mood]
    page = history(game_server, token(new_id(), clan_id=clan), type="clan").json()
    assert check_history(page)[0]["reactions"][0]["emoji"] == "Angry"


async def test_a_socket_that_asks_for_nothing_gets_the_deployments_game_dialect(
    game_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    game = await GameClient.open(game_server.ws_url, token(new_id()))
    assert game.connection.subprotocol is None
    assert await game.quiet() == []
    message = await game.post("global", "no ready came, and that is right")
    assert message["type"] == "global"


async def test_wiki_words_outside_the_game_vocabulary_are_refused_or_mapped(
    game_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    wiki = await Client.connect(game_server, token(new_id()), subprotocol=WIKI)
    await wiki.send({"event": "globalMessage", "data": {"content": "wow", "feeling": "excited"}})
    refusal = (await wiki.recv())["error"][0]
    assert (refusal["reason"], refusal["field"], refusal["message"]) == (
        "WRONG_ENUM",
        "feeling",
        f"feeling must be one of {MOOD_NAMES}",
    )
    message = await wiki.post("global", "feel", feeling="happy")
    assert message["feeling"] == "Happy"
    await wiki.send({"event": "globalMessageReaction", "data": {"message_id": message["_id"], "emoji": "🔥"}})
    assert (await wiki.recv())["error"][0] == {
        "reason": "WRONG_ENUM",
        "field": "emoji",
        "value": "🔥",
        "message": "emoji must be one of Happy, Sad, Love, Wink, Angry",
        "additional": {"allowed": ["Happy", "Sad", "Love", "Wink", "Angry"]},
    }
    reacted = await wiki.react("global", message["_id"], "😍")
    assert [r["emoji"] for r in reacted["message"]["reactions"]] == ["Love"]


async def test_a_game_socket_sees_nothing_it_cannot_parse_through_errors_limits_and_clan_changes(
    server_factory: ServerFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory(
        **suite_env(
            CHAT_DIALECT="game",
            CHAT_INTERNAL_TOKEN=SERVICE_TOKEN,
            CHAT_MESSAGE_RATE="0.01",
            CHAT_MESSAGE_BURST="3",
        )
    )
    player, clan, other_clan = new_id(), new_id(), new_id()
    game = await GameClient.open(server.ws_url, token(player, clan_id=clan))
    for bad in ("{}", "not json", '{"event": "nope", "data": {}}', '{"event": "clanMessage", "data": 5}'):
        await game.connection.send(bad)
    await game.send("globalMessage", {"content": "x" * 300})
    await game.send("clanMessageReaction", {"message_id": "0" * 24, "emoji": "Love"})
    move(server.http_url, player, "leave", clan)
    move(server.http_url, player, "join", other_clan)
    assert await game.quiet(1.0) == []
    assert game.skipped == []
    metrics = httpx.get(f"{server.http_url}/metrics", timeout=5).text
    assert 'chat_frames_withheld_total{kind="error"}' in metrics
    assert 'chat_frames_withheld_total{kind="membership"} 2.0' in metrics
    assert 'chat_frames_withheld_total{kind="ready"} 1.0' in metrics


async def test_a_game_socket_resuming_gets_the_replay_in_its_dialect_and_no_ready(
    game_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    writer = await GameClient.open(game_server.ws_url, token(new_id(), clan_id=clan))
    first = await writer.post("clan", "before the reconnect")
    since = first["createdAt"]
    await writer.post("clan", "missed one")
    connection = await websockets.connect(
        f"{game_server.ws_url}?since={since}",
        additional_headers={"Authorization": f"Bearer {token(new_id(), clan_id=clan)}"},
    )
    resumed = GameClient(connection)
    replay = await resumed.quiet(1.0)
    assert [frame["message"]["content"] for frame in replay if frame["message"]["type"] == "clan"][-1] == "missed one"
    assert resumed.skipped == []


async def test_a_game_socket_outlives_its_token_and_a_wiki_socket_does_not(
    wiki_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    game = await GameClient.open(wiki_server.ws_url, token(new_id(), exp_in=1), subprotocol=GAME)
    wiki = await Client.connect(wiki_server, token(new_id(), exp_in=1))
    await asyncio.wait_for(wiki.connection.wait_closed(), 10)
    assert wiki.connection.close_code == 4401
    sender = await Client.connect(wiki_server, token(new_id()))
    await sender.post("global", "after the expiry")
    assert (await game.recv())["message"]["content"] == "after the expiry"


# --- a wiki deployment with game sockets ----------------------------------------------------------


async def test_wiki_feelings_emoji_and_avatars_reach_a_game_socket_in_shapes_it_parses(
    wiki_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    avatar = {"head": 3, "hair": {"id": 2, "color": "#ffffff"}, "eyes": {"id": "7"}, "nose": 2**40, "skinColor": "#a"}
    game = await GameClient.open(wiki_server.ws_url, token(new_id(), clan_id=clan), subprotocol=GAME)
    wiki = await Client.connect(wiki_server, token(new_id(), name="Wiki", clan_id=clan, avatar=avatar))

    sent = await wiki.post("clan", "so excited", feeling="excited")
    assert (sent["feeling"], sent["sender"]["avatar"]) == ("excited", avatar)  # the wiki sees it as sent
    seen = (await game.recv())["message"]
    assert "feeling" not in seen
    assert seen["sender"] == {  # the bare 3 is read as the game reads it, eyes without a color dropped
        "_id": sent["sender"]["_id"],
        "name": "Wiki",
        "avatar": {"head": {"id": 3, "color": "#ffffff"}, "hair": {"id": 2, "color": "#ffffff"}},
    }

    await wiki.react("clan", sent["_id"], "🔥")
    assert (await game.recv())["message"]["reactions"] == []  # no Mood for 🔥: left out for the game
    await wiki.react("clan", sent["_id"], "😍")
    reacted = (await game.recv())["message"]
    assert [r["emoji"] for r in reacted["reactions"]] == ["Love"]

    await wiki.post("clan", "happy, lower case", feeling="happy")
    assert (await game.recv())["message"]["feeling"] == "Happy"

    bearer = token(new_id(), clan_id=clan)
    raw = history(wiki_server, bearer, type="clan").json()["data"]["ChatMessage"]
    assert {m.get("feeling") for m in raw} >= {"excited", "happy"}  # wiki history keeps what was sent
    shaped = check_history(history(wiki_server, bearer, type="clan", dialect="game").json())
    assert [m.get("feeling") for m in shaped] == ["Happy", None]


async def test_a_game_socket_reacts_with_mood_names_in_a_wiki_deployment(
    wiki_server: ServerProcess, new_id: Callable[[], str]
) -> None:
    game = await GameClient.open(wiki_server.ws_url, token(new_id()), subprotocol=GAME)
    message = await game.post("global", "mood names everywhere", feeling="Wink")
    assert [r["emoji"] for r in (await game.react("global", message["_id"], "Love"))["reactions"]] == ["Love"]


async def test_an_unknown_history_dialect_is_wrong_enum(wiki_server: ServerProcess, new_id: Callable[[], str]) -> None:
    response = history(wiki_server, token(new_id()), dialect="klingon")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "dialect"


# --- across replicas and through a drain ----------------------------------------------------------


async def test_game_and_wiki_sockets_on_different_replicas_share_a_room(
    tmp_path: Path, new_id: Callable[[], str]
) -> None:
    with Cluster(2, workdir=tmp_path / "c", env=suite_env(CHAT_INTERNAL_TOKEN=SERVICE_TOKEN)) as cluster:
        first, second = cluster.replicas
        clan, new_clan, player = new_id(), new_id(), new_id()
        game = await GameClient.open(first.ws_url, token(player, clan_id=clan), subprotocol=GAME)
        wiki = await Client.open(second.ws_url, token(new_id(), clan_id=clan))
        await wiki.post("clan", "from the wiki replica", feeling="excited")
        seen = (await game.recv())["message"]
        assert (seen["content"], "feeling" in seen) == ("from the wiki replica", False)
        await game.send("clanMessage", {"content": "from the game replica", "feeling": "Sad"})
        assert (await wiki.recv())["message"]["feeling"] == "Sad"
        assert (await game.recv())["message"]["content"] == "from the game replica"

        elsewhere = await Client.open(second.ws_url, token(new_id(), clan_id=new_clan))
        move(second.url, player, "join", new_clan)  # through the other replica, over Redis
        for _ in range(100):
            await elsewhere.post("clan", "welcome")
            with contextlib.suppress(TimeoutError):
                if (await game.recv(0.2))["message"]["content"] == "welcome":
                    break
        assert game.skipped == []


async def test_a_drain_closes_game_sockets_last_with_1012(tmp_path: Path, new_id: Callable[[], str]) -> None:
    drain_seconds = 6
    with Cluster(2, workdir=tmp_path / "c", env=suite_env(CHAT_DRAIN_SECONDS=str(drain_seconds))) as cluster:
        leaving, staying = cluster.replicas
        game = await GameClient.open(leaving.ws_url, token(new_id()), subprotocol=GAME)
        wiki = await Client.open(leaving.ws_url, token(new_id()))
        sender = await Client.open(staying.ws_url, token(new_id()))
        leaving.process.ask_to_stop()
        await asyncio.wait_for(wiki.connection.wait_closed(), drain_seconds)
        wiki_closed = time.monotonic()
        assert wiki.connection.close_code == 1012
        await sender.post("global", "during the drain")
        assert (await game.recv())["message"]["content"] == "during the drain"
        await asyncio.wait_for(game.connection.wait_closed(), drain_seconds)
        assert game.connection.close_code == 1012
        assert time.monotonic() - wiki_closed > 1.0


def test_the_game_renderer_withholds_broadcasts_the_client_has_no_handler_for() -> None:
    game = RENDERERS[Dialect.GAME]
    edited = {"chat": "global", "event": "editedMessage", "message": {"_id": "a" * 24, "type": "global"}}
    assert game.broadcast(json.dumps(edited)) is None
    message = {
        "_id": "a" * 24,
        "sender": {"_id": "p", "name": "P", "avatar": None},
        "content": "hi",
        "type": "global",
        "reactions": [],
        "createdAt": "2026-12-02T05:02:34.546Z",
        "updatedAt": "2026-12-02T05:02:34.546Z",
    }
    shown = game.broadcast(json.dumps({"chat": "global", "event": "newMessage", "message": message}))
    assert shown is not None and handle_message(shown) == {"chat": "global", "event": "newMessage", "message": message}


async def test_the_old_envelope_setting_still_means_the_game_and_says_it_is_deprecated(
    server_factory: ServerFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory(CHAT_ENVELOPE="wrapped")
    game = await GameClient.open(server.ws_url, token(new_id()))
    assert (await game.post("global", "still wrapped"))["content"] == "still wrapped"
    assert "CHAT_ENVELOPE is deprecated: use CHAT_DIALECT=game" in server.log()
