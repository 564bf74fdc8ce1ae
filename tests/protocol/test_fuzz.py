"""Property-based fuzzing of a live server: thousands of random and adversarial frames over persistent sockets.

One server per store backend for the module; six sockets in two clans (plus a clanless player and a
second socket of one player) send frames built by hypothesis. Each example picks a sender and a
batch of frames, and a model of the rooms predicts what must happen:

- the sender gets exactly one outcome per frame, in order: an error frame of the docs/protocol.md §7
  shape (checked strictly, exactly equal when the frame's fault is known) or a §3 broadcast that
  matches what was sent and the model's reactions;
- every other socket gets exactly the broadcasts of its rooms, byte for byte the same, and nothing
  else (a sentinel global message ends each example, and must be each socket's next frame); a
  socket of clan B never sees a clan-A message or reaction;
- the server never answers UNEXPECTED, never closes a socket, and stays alive.

Afterwards the history of each room, read back through ``GET /chat/history`` with ``before``, holds
exactly the accepted messages with their final reactions.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection

from tests.conftest import ServerFactory, _backend_env
from tests.protocol.test_ws_messages import ALL_EVENTS
from tests.support.harness import NOT_MEMBER, ServerProcess, token

# What JavaScript's trim() removes, as the game backend trims (not Python's str.strip()).
JS_WHITESPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" + (
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)

# The content policy: C0/C1 controls but tab, LF and CR, and bidi embeddings, overrides and isolates
# are removed; a text with nothing visible left (zero-width characters, lone marks, spaces) is empty.
REMOVED = {*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F)}
REMOVED |= set(range(0x2066, 0x206A))
INVISIBLE = {"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"}


def shown(text: str) -> str:
    """What the server keeps of a sent text: the policy above, then JavaScript's trim()."""
    kept = "".join(char for char in text if ord(char) not in REMOVED).strip(JS_WHITESPACE)
    return kept if any(unicodedata.category(char) not in INVISIBLE for char in kept) else ""


EXAMPLES = 500
FRAME_TIMEOUT = 5.0
MAX_CONTENT = 256
MAX_FEELING = 32
FRAME_MAX_BYTES = 8192
REASONS = {
    "NOT_FOUND",
    "REQUIRED",
    "NOT_ALLOWED",
    "VALIDATION",
    "NOT_STRING",
    "NOT_OBJECT",
    "WRONG_ENUM",
    "MORE_THAN_MAX",
    "NOT_AUTHORIZED",
    "AUTHENTICATION_FAILED",
    "NOT_AUTHENTICATED",
    "TOO_MANY_REQUESTS",
    "NOT_AVAILABLE",
    "UNEXPECTED",
}
# Reasons a healthy server with rate limits off never gives to these frames.
NEVER = {"UNEXPECTED", "NOT_AVAILABLE", "TOO_MANY_REQUESTS", "AUTHENTICATION_FAILED", "NOT_AUTHENTICATED"}
EVENTS = ["clanMessage", "globalMessage", "clanMessageReaction", "globalMessageReaction"]
KNOWN_EVENTS = ALL_EVENTS  # EVENTS and the moderation frames (edit, delete, report), which the fuzzer leaves out
OBJECT_ID = re.compile(r"[0-9a-f]{24}")
CREATED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
INJECTIONS: list[Any] = [
    {"$ne": None},
    {"$gt": ""},
    {"$regex": ".*"},
    {"$where": "sleep(100)"},
    {"$in": ["a", "b"]},
    ["$ne", None],
    {"_id": {"$exists": True}},
]
EMOJIS = ["🔥", "👍", "😂", "❤️", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇮", "🏳️‍🌈", "✅"]
NOT_EMOJIS = ["a", "🔥🔥", ":fire:", "👍x", " 🔥", "\u200d", "1", "<3", "\x00", "🔥" * 40]


def error_frame(*details: dict[str, Any], ref: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"error": list(details)}
    if ref is not None:
        frame["ref"] = ref
    return frame


def detail(reason: str, field: str | None, message: str, value: Any = None, additional: Any = None) -> dict[str, Any]:
    return {"reason": reason, "field": field, "value": value, "message": message, "additional": additional}


def echo(value: Any) -> Any:
    """What an error object's ``value`` shows of a bad input: short scalars only."""
    if isinstance(value, str):
        return value if len(value) <= 64 else None
    if isinstance(value, bool) or (isinstance(value, int | float) and abs(value) < 2**63):
        return value
    return None


# --- the clients and the model of the rooms ------------------------------------------------------


@dataclass
class Socket:
    name: str
    player_id: str
    player_name: str
    clan_id: str | None
    connection: ClientConnection

    async def recv(self) -> Any:
        raw = await asyncio.wait_for(self.connection.recv(), FRAME_TIMEOUT)
        return raw, json.loads(raw)


@dataclass
class Model:
    """What the server must hold: every accepted message as last broadcast, per room, oldest first."""

    rooms: dict[tuple[str, str | None], list[str]] = field(default_factory=dict)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    frames_sent: int = 0

    @staticmethod
    def room_of(message: dict[str, Any]) -> tuple[str, str | None]:
        return message["type"], message.get("clan_id")

    def add(self, message: dict[str, Any]) -> None:
        assert message["_id"] not in self.messages, "an id was reused"
        self.messages[message["_id"]] = message
        self.rooms.setdefault(self.room_of(message), []).append(message["_id"])

    def react(self, message_id: str, player_id: str, player_name: str, emoji: str | None) -> list[dict[str, Any]]:
        """The reactions after one change: one per player, a new emoji moves to the end, same emoji stays."""
        reactions = [dict(r) for r in self.messages[message_id]["reactions"]]
        mine = [r for r in reactions if r["sender_id"] == player_id]
        if emoji is None:
            return [r for r in reactions if r["sender_id"] != player_id]
        if mine and mine[0]["emoji"] == emoji:
            return reactions
        others = [r for r in reactions if r["sender_id"] != player_id]
        return [*others, {"playerName": player_name, "emoji": emoji, "sender_id": player_id}]


@dataclass(repr=False)  # Hypothesis prints the strategies' arguments: a whole transcript would be hundreds of kB
class Fuzz:
    server: ServerProcess
    sockets: list[Socket]
    tokens: dict[str, str]
    clans: tuple[str, str]
    model: Model = field(default_factory=Model)
    refs: itertools.count[int] = field(default_factory=itertools.count)
    transcript: list[str] = field(default_factory=list)
    first_failure: str | None = None

    def __repr__(self) -> str:
        return f"Fuzz({len(self.sockets)} sockets, {len(self.model.messages)} messages, {len(self.transcript)} frames)"

    def members(self, chat: str, clan_id: str | None) -> list[Socket]:
        return [s for s in self.sockets if chat == "global" or (s.clan_id is not None and s.clan_id == clan_id)]

    def ref(self) -> str:
        return f"r{next(self.refs)}-{secrets.token_hex(4)}"


@pytest.fixture(scope="module", params=["memory", "wire"])
async def fuzz(request: pytest.FixtureRequest, server_factory: ServerFactory) -> AsyncIterator[Fuzz]:
    server = server_factory(**_backend_env(request.param, request))
    clan_a, clan_b = secrets.token_hex(12), secrets.token_hex(12)
    ids = {name: secrets.token_hex(12) for name in ("a1", "a2", "b1", "b2", "n1")}
    players = [
        ("a1", ids["a1"], "Aino 🔥", clan_a),
        ("a1-editor", ids["a1"], "Aino 🔥", clan_a),
        ("a2", ids["a2"], "Aapo", clan_a),
        ("b1", ids["b1"], "Bea\u0000\u202e", clan_b),
        ("b2", ids["b2"], "Bruno", clan_b),
        ("n1", ids["n1"], "Nobody", None),
    ]
    sockets, tokens = [], {}
    for name, player_id, player_name, clan in players:
        bearer = token(player_id, name=player_name, clan_id=clan)
        tokens[name] = bearer
        # No client pings: a ping draws its payload from the global ``random`` on this loop, and hypothesis
        # fails a draw in its worker thread during which that state changed. The server's pings are answered.
        connection = await websockets.connect(
            f"{server.ws_url}?token={bearer}", max_queue=None, max_size=2**20, ping_interval=None
        )
        sockets.append(Socket(name, player_id, player_name, clan, connection))
        assert json.loads(await asyncio.wait_for(connection.recv(), FRAME_TIMEOUT)) == {"event": "ready", "data": True}
    yield Fuzz(server, sockets, tokens, (clan_a, clan_b))
    await asyncio.gather(*(s.connection.close() for s in sockets), return_exceptions=True)


# --- frames: each recipe builds what to send and what must come back -----------------------------

ACCEPT = "accept"
ANY = "any"


@dataclass
class Planned:
    """One frame to send, and the expected outcome: ACCEPT (a broadcast), ANY, or the exact error frame."""

    wire: str | bytes
    sent: Any  # the decoded frame when it is a JSON object we built, else None
    expect: Any


unicode_text = st.text(st.characters(codec="utf-8"), max_size=40)
nasty_text = st.one_of(
    unicode_text,
    st.text(st.characters(codec="utf-8", categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "So", "Co"]), max_size=40),
    st.sampled_from(["\x00", "\u202e", "\ufeff", "<script>alert(1)</script>", "'; DROP TABLE x;--", "$ne", "{}"]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | unicode_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(unicode_text, children, max_size=4),
    max_leaves=12,
)
contents = st.one_of(
    nasty_text.filter(lambda t: 0 < len(t.strip(JS_WHITESPACE)) <= MAX_CONTENT),
    st.builds(
        lambda t, pad: f"{pad}{t}{pad}",
        st.sampled_from(["hi", "🔥", "héllo wörld", "a\nb"]),
        st.sampled_from(["", " ", "\t\n ", "\u3000"]),
    ),
    st.integers(1, MAX_CONTENT).map(lambda n: "😀" * n),
    st.just("x" * MAX_CONTENT),
)


def content_problems(data: dict[str, Any]) -> list[dict[str, Any]]:
    problems = []
    if "content" not in data or data["content"] is None:
        problems.append(detail("REQUIRED", "content", "content is required"))
    elif not isinstance(data["content"], str):
        problems.append(detail("NOT_STRING", "content", "content must be a string", echo(data["content"])))
    elif not shown(data["content"]):
        problems.append(detail("REQUIRED", "content", "content must not be empty", data["content"]))
    elif len(shown(data["content"])) > MAX_CONTENT:
        message = f"content must be shorter than or equal to {MAX_CONTENT} characters"
        problems.append(detail("MORE_THAN_MAX", "content", message, additional={"max": MAX_CONTENT}))
    feeling = data.get("feeling")
    if feeling is not None and not isinstance(feeling, str):
        problems.append(detail("NOT_STRING", "feeling", "feeling must be a string", echo(feeling)))
    elif isinstance(feeling, str) and len(shown(feeling)) > MAX_FEELING:
        message = f"feeling must be shorter than or equal to {MAX_FEELING} characters"
        problems.append(detail("MORE_THAN_MAX", "feeling", message, additional={"max": MAX_FEELING}))
    return problems


def message_outcome(sender: Socket, chat: str, data: dict[str, Any], ref: str | None) -> Any:
    problems = content_problems(data)
    if problems:
        return error_frame(*problems, ref=ref)
    if chat == "clan" and sender.clan_id is None:
        return error_frame(NOT_MEMBER, ref=ref)
    return ACCEPT


def reaction_outcome(fuzz: Fuzz, sender: Socket, chat: str, data: dict[str, Any], ref: str | None) -> Any:
    problems = []
    message_id = data.get("message_id")
    if message_id is None:
        problems.append(detail("REQUIRED", "message_id", "message_id is required"))
    elif not (isinstance(message_id, str) and re.fullmatch(r"[0-9a-fA-F]{24}", message_id)):
        problems.append(
            detail("VALIDATION", "message_id", "message_id must be a 24-character hex id", echo(message_id))
        )
    emoji = data.get("emoji")
    if emoji not in (None, "") and emoji not in EMOJIS:
        problems.append(detail("VALIDATION", "emoji", "emoji must be a single emoji", echo(emoji)))
    if problems:
        return error_frame(*problems, ref=ref)
    assert isinstance(message_id, str)  # every other value is a problem above
    if chat == "clan" and sender.clan_id is None:
        return error_frame(NOT_MEMBER, ref=ref)
    stored = fuzz.model.messages.get(message_id.lower())
    if stored is None or Model.room_of(stored) != (chat, sender.clan_id if chat == "clan" else None):
        message = "Could not find any objects with specified id"
        return error_frame(detail("NOT_FOUND", "_id", message, message_id.lower()), ref=ref)
    return ACCEPT


@st.composite
def planned_frame(draw: st.DrawFn, fuzz: Fuzz, sender: Socket) -> Planned:
    recipe = draw(
        st.sampled_from(
            ["message", "message", "bad_message", "reaction", "reaction", "bad_reaction", "envelope", "junk"]
        )
    )
    ref = fuzz.ref() if draw(st.booleans()) else None
    frame: dict[str, Any]

    if recipe in ("message", "bad_message"):
        chat = draw(st.sampled_from(["clan", "global"]))
        if recipe == "message":
            data: dict[str, Any] = {"content": draw(contents)}
            feeling = draw(st.sampled_from([None, "happy", "excited", " spaced ", "   ", "😀", "f" * MAX_FEELING]))
        else:
            data = {}
            content = draw(
                st.sampled_from(
                    [
                        None,
                        "",
                        "   ",
                        "\n\t",
                        0,
                        12.5,
                        True,
                        [],
                        ["x"],
                        2**70,
                        "x" * (MAX_CONTENT + 1),
                        "ok",
                        *INJECTIONS,
                    ]
                )
            )
            if content is not None or draw(st.booleans()):
                data["content"] = content
            feeling = draw(st.sampled_from([None, "fine", 5, False, "y" * (MAX_FEELING + 1), *INJECTIONS]))
        if feeling is not None:
            data["feeling"] = feeling
        frame = {"event": f"{chat}Message", "data": data}
        expect = message_outcome(sender, chat, data, ref)
    elif recipe in ("reaction", "bad_reaction"):
        chat = draw(st.sampled_from(["clan", "global"]))
        # Drawn as a number, so the draws never depend on how many messages the server holds by now.
        ids = [secrets.token_hex(12), *fuzz.model.messages]
        message_id: Any = ids[draw(st.integers(0, 2**16)) % len(ids)]
        if draw(st.booleans()):
            message_id = message_id.upper()
        if recipe == "reaction":
            emoji = draw(st.sampled_from([*EMOJIS, *EMOJIS, "", None, "absent"]))
        else:
            message_id = draw(
                st.sampled_from(
                    [message_id, None, "absent", 123, "zz" * 12, "abc", message_id + "0", " " + message_id, *INJECTIONS]
                )
            )
            emoji = draw(st.sampled_from(["🔥", "", *NOT_EMOJIS, 5, True, *INJECTIONS]))
        data = {}
        if message_id != "absent":
            data["message_id"] = message_id
        if emoji != "absent":
            data["emoji"] = emoji
        frame = {"event": f"{chat}MessageReaction", "data": data}
        expect = reaction_outcome(fuzz, sender, chat, data, ref)
    elif recipe == "envelope":
        event = draw(
            st.sampled_from(["absent", None, "nope", "ClanMessage", "newMessage", 5, "", *EVENTS, *INJECTIONS])
        )
        data_value = draw(st.sampled_from(["absent", None, "text", [1], 5, {}, {"content": "hello"}, *INJECTIONS]))
        bad_ref = draw(st.sampled_from([None, None, None, "r" * 65, 5, ["r"], {"$ne": None}]))
        frame = {}
        if event != "absent":
            frame["event"] = event
        if data_value != "absent":
            frame["data"] = data_value
        if bad_ref is not None:
            ref = None
            frame["ref"] = bad_ref
            expect = error_frame(detail("VALIDATION", "ref", "ref must be a string of at most 64 characters"))
        elif event not in EVENTS:
            message = f"event must be one of {', '.join(KNOWN_EVENTS)}"
            expect = error_frame(
                detail("NOT_ALLOWED", "event", message, echo(frame.get("event")), {"allowed": KNOWN_EVENTS}),
                ref=ref,
            )
        elif data_value in ("absent", None):
            expect = error_frame(detail("REQUIRED", "data", "data is required"), ref=ref)
        elif not isinstance(data_value, dict):
            expect = error_frame(detail("NOT_OBJECT", "data", "data must be an object"), ref=ref)
        elif "Reaction" in event:
            expect = reaction_outcome(fuzz, sender, event.removesuffix("MessageReaction"), data_value, ref)
        else:
            expect = message_outcome(sender, event.removesuffix("Message"), data_value, ref)
    else:
        return draw(junk_frame(fuzz))

    if ref is not None:
        frame["ref"] = ref
    return Planned(json.dumps(frame, ensure_ascii=draw(st.booleans())), frame, expect)


@st.composite
def junk_frame(draw: st.DrawFn, fuzz: Fuzz) -> Planned:
    kind = draw(
        st.sampled_from(
            ["json", "object", "text", "bytes", "utf8_bytes", "nested", "too_large", "surrogate", "numbers", "dupkeys"]
        )
    )
    if kind == "json":
        value = draw(json_values)
        wire = json.dumps(value)
        return Planned(wire, None, ANY if isinstance(value, dict) else {"error": "Invalid JSON"})
    if kind == "object":
        value = draw(st.dictionaries(st.sampled_from(["event", "data", "ref", "$where", "", "x"]), json_values))
        if draw(st.booleans()):
            value["event"] = draw(st.sampled_from(EVENTS))
        return Planned(json.dumps(value), None, ANY)
    if kind == "text":
        return Planned(draw(st.text(st.characters(codec="utf-8"), max_size=200)), None, ANY)
    if kind == "bytes":
        return Planned(draw(st.binary(max_size=200)) + b"\xff\xfe\xc0", None, {"error": "Invalid JSON"})
    if kind == "utf8_bytes":
        content = f"binary-{fuzz.ref()}"
        frame = {"event": "globalMessage", "data": {"content": content}}
        return Planned(json.dumps(frame).encode(), frame, ACCEPT)
    if kind == "nested":
        # Shallow nesting parses (and is then refused field by field); nesting deeper than the
        # decoder's recursion limit must still be "Invalid JSON", within the frame size limit.
        deep = draw(st.booleans())
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        depth = draw(st.integers(1100, 1300) if deep else st.integers(10, 400))
        wrap = draw(st.booleans())
        body = opener * depth + "1" + closer * depth
        text = '{"event":"globalMessage","data":{"content":' + body + "}}" if wrap else body
        return Planned(text, None, {"error": "Invalid JSON"} if deep or (opener == "[" and not wrap) else ANY)
    if kind == "too_large":
        size = draw(st.integers(FRAME_MAX_BYTES + 1, 3 * FRAME_MAX_BYTES))
        char = draw(st.sampled_from(["x", "é", "😀", " "]))
        padding = char * (size // len(char.encode()) + 1)
        frame = {"event": "globalMessage", "data": {"content": padding}, "ref": fuzz.ref()}
        return Planned(json.dumps(frame, ensure_ascii=False), None, {"error": "Frame too large"})
    if kind == "surrogate":
        half = draw(st.sampled_from(["\\ud800", "\\uDFFF", "\\udc00x", "\\ud83d"]))
        where = draw(st.sampled_from(["content", "feeling", "ref", "event", "message_id", "emoji", "key"]))
        templates = {
            "content": '{"event":"globalMessage","data":{"content":"hi %s"}}',
            "feeling": '{"event":"globalMessage","data":{"content":"hi","feeling":"%s"}}',
            "ref": '{"event":"nope","data":{},"ref":"%s"}',
            "event": '{"event":"%s","data":{}}',
            "message_id": '{"event":"globalMessageReaction","data":{"message_id":"%s","emoji":"x"}}',
            "emoji": '{"event":"globalMessageReaction","data":{"message_id":"%s","emoji":"%s"}}',
            "key": '{"event":"globalMessage","data":{"content":"hi","%s":1}}',
        }
        text = templates[where] % ((secrets.token_hex(12), half) if where == "emoji" else (half,))
        return Planned(text, None, {"error": "Invalid JSON"})
    if kind == "numbers":
        number = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "9" * 5000, "9" * 300, "-0", "1E400"]))
        text = '{"event":"globalMessage","data":{"content":' + number + '},"ref":"n"}'
        return Planned(text, None, ANY)
    content = f"dup-{fuzz.ref()}"
    text = '{"event":"nope","event":"globalMessage","data":{"content":1},"data":{"content":"' + content + '"}}'
    return Planned(text, {"event": "globalMessage", "data": {"content": content}}, ACCEPT)


# --- checking what comes back --------------------------------------------------------------------


def assert_error_shape(frame: dict[str, Any]) -> None:
    """§5 strictly: ``error`` is one of the two plain strings or a list of five-key objects with a known reason."""
    assert set(frame) <= {"error", "ref"}, frame
    assert "ref" not in frame or isinstance(frame["ref"], str) and len(frame["ref"]) <= 64, frame
    error = frame["error"]
    if isinstance(error, str):
        assert error in ("Invalid JSON", "Frame too large"), frame
        return
    assert isinstance(error, list) and error, frame
    for item in error:
        assert isinstance(item, dict) and set(item) == {"reason", "field", "value", "message", "additional"}, frame
        assert item["reason"] in REASONS and item["reason"] not in NEVER, frame
        assert item["field"] is None or isinstance(item["field"], str), frame
        assert isinstance(item["message"], str) and item["message"], frame


def assert_broadcast_shape(frame: dict[str, Any]) -> None:
    """§3 strictly: the envelope and every field of the message, nothing more."""
    assert set(frame) == {"chat", "event", "message"}, frame
    assert frame["chat"] in ("clan", "global") and frame["event"] in ("newMessage", "newReaction"), frame
    message = frame["message"]
    keys = {"_id", "sender", "content", "type", "reactions", "createdAt"}
    assert keys <= set(message) <= keys | {"clan_id", "feeling", "updatedAt"}, frame
    assert OBJECT_ID.fullmatch(message["_id"]) and CREATED_AT.fullmatch(message["createdAt"]), frame
    # updatedAt is being added to the protocol (resume after reconnect): when present, same format, never earlier.
    assert CREATED_AT.fullmatch(message.get("updatedAt", message["createdAt"])), frame
    assert message.get("updatedAt", message["createdAt"]) >= message["createdAt"], frame
    assert message["type"] == frame["chat"] and ("clan_id" in message) == (frame["chat"] == "clan"), frame
    assert set(message["sender"]) == {"_id", "name", "avatar"}, frame
    assert isinstance(message["content"], str) and message["content"] == message["content"].strip(JS_WHITESPACE), frame
    assert 0 < len(message["content"]) <= MAX_CONTENT, frame
    assert "feeling" not in message or isinstance(message["feeling"], str) and message["feeling"], frame
    for reaction in message["reactions"]:
        assert set(reaction) == {"playerName", "emoji", "sender_id"}, frame
    assert len({r["sender_id"] for r in message["reactions"]}) == len(message["reactions"]), frame


def without(message: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k not in keys}


def check_broadcast(fuzz: Fuzz, sender: Socket, planned: Planned, frame: dict[str, Any]) -> None:
    """A broadcast answers what was sent, by this sender, and agrees with the model; then the model learns it."""
    assert_broadcast_shape(frame)
    message = frame["message"]
    sent = planned.sent
    if frame["event"] == "newMessage":
        assert message["sender"] == {"_id": sender.player_id, "name": sender.player_name, "avatar": None}, frame
        assert message["reactions"] == [] and message["_id"] not in fuzz.model.messages, frame
        assert message.get("clan_id") == (sender.clan_id if frame["chat"] == "clan" else None), frame
        if sent is not None:
            assert sent["event"] == f"{frame['chat']}Message", (sent, frame)
            assert message["content"] == shown(sent["data"]["content"]), (sent, frame)
            feeling = shown(sent["data"].get("feeling") or "")
            assert message.get("feeling") == (feeling or None), (sent, frame)
        fuzz.model.add(message)
        return
    stored = fuzz.model.messages.get(message["_id"])
    assert stored is not None, ("reaction on a message the model does not know", frame)
    assert Model.room_of(stored) == (frame["chat"], sender.clan_id if frame["chat"] == "clan" else None), frame
    if sent is not None:
        assert sent["event"] == f"{frame['chat']}MessageReaction", (sent, frame)
        assert sent["data"]["message_id"].lower() == message["_id"], (sent, frame)
        reactions = fuzz.model.react(
            message["_id"], sender.player_id, sender.player_name, sent["data"].get("emoji") or None
        )
        assert without(message, "updatedAt") == {**without(stored, "updatedAt"), "reactions": reactions}, frame
    else:
        assert without(message, "updatedAt", "reactions") == without(stored, "updatedAt", "reactions"), frame
    assert message.get("updatedAt", "") >= stored.get("updatedAt", ""), (stored, frame)
    fuzz.model.messages[message["_id"]] = message


async def run_batch(fuzz: Fuzz, sender: Socket, batch: list[Planned]) -> None:
    for planned in batch:
        await sender.connection.send(planned.wire)
    fuzz.model.frames_sent += len(batch)

    broadcasts: list[tuple[str, dict[str, Any]]] = []
    for planned in batch:
        raw, frame = await sender.recv()
        fuzz.transcript.append(f"{sender.name} sent {planned.wire[:300]!r} -> {raw[:300]}")
        if "error" in frame:
            assert_error_shape(frame)
            if planned.expect == ACCEPT:
                raise AssertionError(f"expected a broadcast for {planned.wire[:300]!r}, got {frame}")
            if planned.expect != ANY:
                assert frame == planned.expect, (planned.wire[:300], frame)
            sent_ref = planned.sent.get("ref") if isinstance(planned.sent, dict) else None
            if isinstance(sent_ref, str) and len(sent_ref) <= 64 and isinstance(frame["error"], list):
                assert frame.get("ref") == sent_ref, (planned.wire[:300], frame)
        else:
            assert planned.expect in (ACCEPT, ANY), (planned.wire[:300], planned.expect, frame)
            check_broadcast(fuzz, sender, planned, frame)
            broadcasts.append((raw, frame))

    for socket in fuzz.sockets:
        for raw, frame in broadcasts:
            message = frame["message"]
            if socket is sender or socket not in fuzz.members(frame["chat"], message.get("clan_id")):
                continue
            got_raw, got = await socket.recv()
            if got["chat"] == "clan":
                assert got["message"]["clan_id"] == socket.clan_id, (socket.name, "saw another clan's frame", got)
            assert got_raw == raw, (socket.name, got, frame)


async def end_with_sentinel(fuzz: Fuzz) -> None:
    """A global message from n1: every socket's very next frame must be it, so nothing stray was queued."""
    sender = fuzz.sockets[-1]
    content = f"sentinel {fuzz.ref()}"
    await sender.connection.send(json.dumps({"event": "globalMessage", "data": {"content": content}}))
    raws = {s.name: await s.recv() for s in fuzz.sockets}
    first = raws[sender.name]
    assert first[1].get("event") == "newMessage" and first[1]["message"]["content"] == content, first
    for name, got in raws.items():
        assert got[0] == first[0], (name, "got a stray frame", got[1])
    fuzz.model.add(first[1]["message"])


# Hypothesis draws in a worker thread while the suite's loop runs the clients on the main thread, and
# libraries there (the MongoDB driver's server selection, back-off jitter) use the global ``random``:
# Hypothesis then believes a strategy used it and, building that warning, warns again about the size
# of the strategies' repr. No strategy here uses ``random``.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@pytest.mark.filterwarnings("ignore:Generating overly large repr")
async def test_every_frame_gets_exactly_one_valid_outcome_and_no_room_leaks(fuzz: Fuzz) -> None:
    """Hypothesis drives the examples from a worker thread; each example's I/O runs on the suite's loop."""
    loop = asyncio.get_running_loop()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(data=st.data())
    def example(data: st.DataObject) -> None:
        sender = data.draw(st.sampled_from(fuzz.sockets), label="sender")
        batch = data.draw(st.lists(planned_frame(fuzz, sender), min_size=1, max_size=12), label="batch")
        fuzz.transcript.clear()
        try:
            asyncio.run_coroutine_threadsafe(run_example(fuzz, sender, batch), loop).result(timeout=60)
        except BaseException as failure:
            # The server keeps its state between examples, so hypothesis's replay of a failing example
            # runs against a different history: keep the first failure as it happened.
            if fuzz.first_failure is None:
                fuzz.first_failure = "\n".join([*fuzz.transcript, f"{type(failure).__name__}: {failure}"])
            raise

    try:
        await asyncio.to_thread(example)
    except BaseException:
        if fuzz.first_failure is not None:
            pytest.fail(f"first failing example, as it ran:\n{fuzz.first_failure}", pytrace=False)
        raise
    assert fuzz.model.frames_sent >= EXAMPLES


async def run_example(fuzz: Fuzz, sender: Socket, batch: list[Planned]) -> None:
    await run_batch(fuzz, sender, batch)
    await end_with_sentinel(fuzz)
    assert fuzz.server.process is not None and fuzz.server.process.poll() is None, fuzz.server.log()[-3000:]


async def read_room(http: httpx.AsyncClient, bearer: str, chat: str) -> list[dict[str, Any]]:
    """The whole room, newest first, walking back with ``before``."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"type": chat, "limit": 50}
    while True:
        response = await http.get("/chat/history", params=params, headers={"Authorization": f"Bearer {bearer}"})
        assert response.status_code == 200, response.text
        page = response.json()["data"]["ChatMessage"]
        if not page:
            return found
        found.extend(page)
        params["before"] = page[-1]["_id"]


async def test_history_holds_exactly_the_accepted_messages_with_their_final_reactions(fuzz: Fuzz) -> None:
    clan_a, clan_b = fuzz.clans
    async with httpx.AsyncClient(base_url=fuzz.server.http_url, timeout=5) as http:
        for bearer, chat, room in (
            (fuzz.tokens["n1"], "global", ("global", None)),
            (fuzz.tokens["a2"], "clan", ("clan", clan_a)),
            (fuzz.tokens["b2"], "clan", ("clan", clan_b)),
        ):
            stored = await read_room(http, bearer, chat)
            expected = [fuzz.model.messages[i] for i in reversed(fuzz.model.rooms.get(room, []))]
            assert [m["_id"] for m in stored] == [m["_id"] for m in expected], room
            assert stored == expected, room
        clanless = {"Authorization": f"Bearer {fuzz.tokens['n1']}"}
        assert (await http.get("/chat/history", params={"type": "clan"}, headers=clanless)).status_code == 403
        assert (await http.get("/healthz")).status_code == 200
    assert fuzz.server.process is not None and fuzz.server.process.poll() is None
