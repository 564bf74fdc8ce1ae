"""Rooms: a clan's messages stay in that clan, every socket of a player is a member, the sender sees its own."""

from __future__ import annotations

from collections.abc import Callable

from tests.support.harness import Client, ServerProcess, token


async def test_second_clan_never_sees_the_first_clans_messages(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    clan_a, clan_b = new_id(), new_id()
    alice = await Client.connect(server, token(new_id(), clan_id=clan_a))
    amy = await Client.connect(server, token(new_id(), clan_id=clan_a))
    bob = await Client.connect(server, token(new_id(), clan_id=clan_b))
    secret = await alice.post("clan", "clan A only")
    assert (await amy.recv())["message"]["_id"] == secret["_id"]
    await bob.send({"event": "globalMessage", "data": {"content": "sentinel"}})
    frame = await bob.recv()
    assert (frame["chat"], frame["message"]["content"]) == ("global", "sentinel"), "clan B got a clan A frame"


async def test_second_clan_cannot_react_to_the_first_clans_message(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    alice = await Client.connect(server, token(new_id(), clan_id=new_id()))
    bob = await Client.connect(server, token(new_id(), clan_id=new_id()))
    secret = await alice.post("clan", "hands off")
    await bob.send({"event": "clanMessageReaction", "data": {"message_id": secret["_id"], "emoji": "😈"}})
    reply = await bob.recv()
    assert reply["error"][0]["reason"] == "NOT_FOUND"
    assert "hands off" not in str(reply)
    await alice.send({"event": "clanMessage", "data": {"content": "unchanged?"}})
    assert (await alice.recv())["message"]["content"] == "unchanged?", "alice got a reaction frame from bob"


async def test_every_socket_of_one_player_is_a_member(server: ServerProcess, new_id: Callable[[], str]) -> None:
    player, clan = new_id(), new_id()
    phone = await Client.connect(server, token(player, name="Multi", clan_id=clan))
    editor = await Client.connect(server, token(player, name="Multi", clan_id=clan), via="header")
    friend = await Client.connect(server, token(new_id(), clan_id=clan))
    message = await friend.post("clan", "both of you")
    assert (await phone.recv())["message"] == message
    assert (await editor.recv())["message"] == message
    await phone.close()
    sent = await editor.post("clan", "still here on the editor")
    assert (await friend.recv())["message"] == sent


async def test_disconnected_socket_leaves_its_rooms_and_others_keep_chatting(
    server: ServerProcess, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    leaver = await Client.connect(server, token(new_id(), clan_id=clan))
    stayer = await Client.connect(server, token(new_id(), clan_id=clan))
    await leaver.close()
    message = await stayer.post("clan", "anyone left?")
    assert message["content"] == "anyone left?"
