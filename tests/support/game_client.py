"""A model of the shipped Unity client's receive rules: it raises wherever the C# code would throw.

``ChatListener.HandleMessage`` parses only ``{"message": {"chat", "event", "message"}}``; a text that
does not start with ``{`` and end with ``}`` is skipped, invalid JSON is caught, and any other object
throws, which stops the client's frame loop for good. ``ServerChatMessage`` and the chat UI then read
the fields below; a wrong type or an unknown Mood (``Enum.Parse``) throws too. ``GameClient`` talks
to a real server the way the game does and runs every frame it receives through the model.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

MOODS = {"Happy", "Sad", "Neutral", "Love", "Thinking", "Wink", "Angry", "None"}
AVATAR_PIECES = {"head", "hair", "eyes", "nose", "mouth", "eyebrows", "clothes", "feet", "hands"}
# What Newtonsoft turns into a DateTime: 19-40 characters, ``T`` at index 10, optional fraction and ``Z``.
CREATED_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?Z?")
FRAME_TIMEOUT = 5.0


class ClientWouldThrow(AssertionError):
    """The shipped client would throw here, and show no live chat until the app is paused and resumed."""


def handle_message(text: str) -> dict[str, Any] | None:
    """What ``HandleMessage`` does with one text frame: the inner frame it uses, or ``None`` when skipped."""
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        root = json.loads(text)
    except ValueError:
        return None  # JsonReaderException: the only exception the client catches
    middle = root.get("message") if isinstance(root, dict) else None
    if not isinstance(middle, dict):
        raise ClientWouldThrow(f'root["message"] is not an object: {text[:200]}')
    check_message(middle.get("message"))
    if middle.get("event") == "newMessage" and middle.get("chat") not in ("clan", "global"):
        raise ClientWouldThrow(f"newMessage for an unknown channel: {middle.get('chat')!r}")
    return middle


def check_message(message: Any) -> None:
    """``ToObject<ServerChatMessage>`` and the UI handlers that read it."""
    if not isinstance(message, dict):
        raise ClientWouldThrow(f"message is not an object: {message!r}")
    _string(message, "_id")
    sender = message.get("sender")
    if not isinstance(sender, dict):
        raise ClientWouldThrow(f"sender is not an object: {sender!r}")
    _string(sender, "_id")
    _string(sender, "name")
    _check_avatar(sender.get("avatar"))
    feeling = message.get("feeling")
    if feeling is not None and feeling not in MOODS:
        raise ClientWouldThrow(f"Enum.Parse(Mood, {feeling!r})")
    created_at = message.get("createdAt")
    if not (isinstance(created_at, str) and 19 <= len(created_at) <= 40 and CREATED_AT.fullmatch(created_at)):
        raise ClientWouldThrow(f"createdAt is not a date: {created_at!r}")
    if message.get("type") not in ("clan", "global"):
        raise ClientWouldThrow(f"type is {message.get('type')!r}")
    reactions = message.get("reactions")
    if not isinstance(reactions, list):
        raise ClientWouldThrow(f"reactions is not a list: {reactions!r}")
    for reaction in reactions:
        if not isinstance(reaction, dict) or reaction.get("emoji") not in MOODS:
            raise ClientWouldThrow(f"Enum.Parse(Mood, reaction {reaction!r})")
        _string(reaction, "sender_id")
        _string(reaction, "playerName")
    for key in ("clan_id", "content", "recipientPlayer_id"):
        if key in message and not isinstance(message[key], str):
            raise ClientWouldThrow(f"{key} is not a string: {message[key]!r}")


def check_history(body: Any) -> list[dict[str, Any]]:
    """``GetMessageHistory``: ``root["data"]["ChatMessage"]``, each element through the message rules."""
    messages = body["data"]["ChatMessage"]
    if not isinstance(messages, list):
        raise ClientWouldThrow("data.ChatMessage is not a list")
    for message in messages:
        check_message(message)
    return messages


def _string(holder: dict[str, Any], key: str) -> None:
    if not isinstance(holder.get(key), str):
        raise ClientWouldThrow(f"{key} is not a string: {holder.get(key)!r}")


def _check_avatar(avatar: Any) -> None:
    if avatar is None:
        return
    if not isinstance(avatar, dict):
        raise ClientWouldThrow(f"avatar is not an object: {avatar!r}")
    for key in AVATAR_PIECES & avatar.keys():
        piece = avatar[key]
        if piece is None:
            continue
        if not (
            isinstance(piece, dict)
            and type(piece.get("id")) is int
            and -(2**31) <= piece["id"] < 2**31
            and isinstance(piece.get("color"), str)
        ):
            raise ClientWouldThrow(f"avatar piece {key} is not {{id, color}}: {piece!r}")


class GameClient:
    """A socket opened as the shipped client opens it (Bearer header, no subprotocol unless asked).

    Like ``harness.Client``, every one is remembered in ``opened`` so the suite closes it after its test.
    """

    opened: list[GameClient] = []

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.skipped: list[str] = []
        GameClient.opened.append(self)

    @classmethod
    async def open(cls, ws_url: str, bearer: str, *, subprotocol: str | None = None) -> GameClient:
        connection = await websockets.connect(
            ws_url,
            additional_headers={"Authorization": f"Bearer {bearer}"},
            subprotocols=[Subprotocol(subprotocol)] if subprotocol else None,
            max_queue=None,
        )
        return cls(connection)

    async def send(self, event: str, data: dict[str, Any]) -> None:
        """Indented JSON with CRLF line ends, as ``JObject.ToString()`` on a Windows build."""
        await self.connection.send(json.dumps({"event": event, "data": data}, indent=2).replace("\n", "\r\n"))

    async def post(self, chat: str, content: str, feeling: str = "Happy") -> dict[str, Any]:
        """Send as ``ChatListener.SendMessage`` does and return the broadcast message that comes back."""
        await self.send(f"{chat}Message", {"content": content, "feeling": feeling})
        frame = await self.recv()
        assert frame["event"] == "newMessage", frame
        message: dict[str, Any] = frame["message"]
        return message

    async def react(self, chat: str, message_id: str, mood: str) -> dict[str, Any]:
        await self.send(f"{chat}MessageReaction", {"message_id": message_id, "emoji": mood})
        frame = await self.recv()
        assert frame["event"] == "newReaction", frame
        message: dict[str, Any] = frame["message"]
        return message

    async def recv(self, timeout: float = FRAME_TIMEOUT) -> dict[str, Any]:
        """The next frame the client would use; raises ``ClientWouldThrow`` at a frame it would throw on."""
        while True:
            text = await asyncio.wait_for(self.connection.recv(), timeout)
            assert isinstance(text, str), f"a binary frame: {text!r}"
            used = handle_message(text)
            if used is not None:
                return used
            self.skipped.append(text)

    async def quiet(self, seconds: float = 0.5) -> list[dict[str, Any]]:
        """Every frame that arrives within ``seconds``, each through the model."""
        frames = []
        try:
            while True:
                frames.append(await self.recv(seconds))
        except TimeoutError:
            return frames

    async def close(self) -> None:
        await self.connection.close()
