"""The hub in this process: rooms of local sockets, one frame fanned out, subscriptions and clan moves."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from chatserver.broker.base import RoomFrame
from chatserver.connection import Connection
from chatserver.hub import Hub
from chatserver.protocol.vocabulary import CloseCode
from tests.unit.sockets import Peer, open_connection, player


class SubscriptionLog:
    """The hub's view of the broker: which rooms it asked to follow and to leave, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def subscribe(self, room: str) -> None:
        self.calls.append(("subscribe", room))

    async def unsubscribe(self, room: str) -> None:
        self.calls.append(("unsubscribe", room))


@pytest.fixture
def subscriptions() -> SubscriptionLog:
    return SubscriptionLog()


@pytest.fixture
async def hub(subscriptions: SubscriptionLog) -> AsyncIterator[Hub]:
    hub = Hub(subscriptions, max_sockets_per_player=2)
    yield hub
    hub.cut_all(CloseCode.SERVICE_RESTART)


async def joined(hub: Hub, player_id: str, clan_id: str | None = None) -> tuple[Connection, Peer]:
    connection, peer = await open_connection(player(player_id, clan_id))
    await hub.attach(connection)
    return connection, peer


def frame(text: str) -> RoomFrame:
    return RoomFrame(text, message_id="m1", updated_at="2026-01-01T00:00:00.000Z", sent_at=0.0, seq=1)


async def test_a_frame_reaches_every_socket_of_its_room_and_no_other_clan(hub: Hub) -> None:
    a1, a2, b = await joined(hub, "p1", "a"), await joined(hub, "p2", "a"), await joined(hub, "p3", "b")
    hub.deliver("clan:a", frame("for clan a"))
    hub.deliver("global", frame("for everyone"))
    for _, peer in (a1, a2):
        assert [await peer.next(), await peer.next()] == ["for clan a", "for everyone"]
    assert await b[1].next() == "for everyone"


async def test_the_first_socket_subscribes_a_room_and_the_last_one_leaving_unsubscribes(
    hub: Hub, subscriptions: SubscriptionLog
) -> None:
    first, _ = await joined(hub, "p1", "a")
    second, _ = await joined(hub, "p2", "a")
    assert subscriptions.calls == [("subscribe", "global"), ("subscribe", "clan:a")]
    await hub.detach(first)
    assert subscriptions.calls[2:] == []
    await hub.detach(second)
    assert sorted(subscriptions.calls[2:]) == [("unsubscribe", "clan:a"), ("unsubscribe", "global")]
    assert (hub.connection_count, hub.room_count) == (0, 0)


async def test_a_player_over_the_socket_limit_loses_the_oldest_socket(hub: Hub) -> None:
    oldest, newer, newest = [await joined(hub, "p1") for _ in range(3)]
    assert await oldest[1].next() == ("close", *CloseCode.TOO_MANY_SOCKETS.value)
    hub.deliver("global", frame("still here"))
    for _, peer in (newer, newest):
        assert await peer.next() == "still here"


async def test_a_clan_move_tells_the_socket_and_changes_the_rooms_it_hears(hub: Hub) -> None:
    mover, peer = await joined(hub, "p1", "a")
    await hub.move_player("p1", "b")
    assert [json.loads(await peer.next()) for _ in range(2)] == [
        {"event": "clanLeft", "data": {"clan_id": "a"}},
        {"event": "clanJoined", "data": {"clan_id": "b"}},
    ]
    hub.deliver("clan:a", frame("old clan"))
    hub.deliver("clan:b", frame("new clan"))
    assert await peer.next() == "new clan"
    assert mover.player.clan_id == "b"


async def test_a_stale_leave_does_not_pull_a_socket_out_of_the_clan_it_joined_since(hub: Hub) -> None:
    mover, peer = await joined(hub, "p1", "b")
    await hub.move_player("p1", None, only_from="a")
    hub.deliver("clan:b", frame("still in b"))
    assert await peer.next() == "still in b"
    assert mover.player.clan_id == "b"
