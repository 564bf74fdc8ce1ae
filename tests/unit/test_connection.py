"""One connection in this process: its bounded queue, hold and release, and the two ways to end it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from chatserver.connection import Connection, ConnectionState
from chatserver.protocol.vocabulary import CloseCode, Dialect
from tests.unit.sockets import Peer, open_connection, player

QUEUE = 4


@pytest.fixture
async def opened() -> AsyncIterator[tuple[Connection, Peer]]:
    connection, peer = await open_connection(player("p1"), queue_frames=QUEUE)
    yield connection, peer
    await connection.stop()


async def stalled(connection: Connection, peer: Peer) -> None:
    """The client stops reading: the writer is stuck sending ``first``, nothing more leaves the queue."""
    peer.gate.clear()
    peer.sending.clear()
    connection.push("first")
    await asyncio.wait_for(peer.sending.wait(), 5)
    assert peer.sent.empty()


async def test_pushed_frames_go_out_in_order(opened: tuple[Connection, Peer]) -> None:
    connection, peer = opened
    for text in ("a", "b", "c"):
        connection.push(text)
    assert [await peer.next() for _ in range(3)] == ["a", "b", "c"]


async def test_a_client_that_stops_reading_is_cut_as_a_slow_consumer_once_its_queue_is_full(
    opened: tuple[Connection, Peer],
) -> None:
    connection, peer = opened
    await stalled(connection, peer)
    for n in range(QUEUE):
        connection.push(f"queued {n}")
    before = connection.state
    connection.push("one too many")
    assert (before, connection.state) == (ConnectionState.OPEN, ConnectionState.CLOSING)
    peer.gate.set()
    assert [await peer.next(), await peer.next()] == ["first", ("close", *CloseCode.SLOW_CONSUMER.value)]


async def test_a_game_socket_whose_queue_is_full_drops_its_oldest_frame_instead() -> None:
    connection, peer = await open_connection(player("p1"), queue_frames=QUEUE, dialect=Dialect.GAME)
    await stalled(connection, peer)
    for n in range(QUEUE + 2):
        connection.push(f"queued {n}")
    assert connection.state is ConnectionState.OPEN
    peer.gate.set()
    assert [await peer.next() for _ in range(QUEUE + 1)] == ["first", *(f"queued {n}" for n in range(2, QUEUE + 2))]
    await connection.stop()


async def test_held_frames_wait_for_release_and_go_out_after_the_first_frames(opened: tuple[Connection, Peer]) -> None:
    connection, peer = opened
    connection.hold()
    connection.push("live 1")
    connection.push("live 2")
    assert peer.sent.empty()
    connection.release(["replay", "ready"], skip=lambda text: text == "live 1")
    assert [await peer.next() for _ in range(3)] == ["replay", "ready", "live 2"]


async def test_a_live_frame_the_replay_already_sent_is_not_sent_again_after_ready(
    opened: tuple[Connection, Peer],
) -> None:
    connection, peer = opened  # stored before the replay was read, published (and so live) only after ready
    connection.hold()
    connection.release(["replayed 1", "ready"], skip=lambda text: text == "replayed 1")
    connection.push("replayed 1")
    connection.push("new 2")
    assert [await peer.next() for _ in range(3)] == ["replayed 1", "ready", "new 2"]
    assert peer.sent.empty()


async def test_more_held_frames_than_the_queue_holds_cut_the_socket(opened: tuple[Connection, Peer]) -> None:
    connection, peer = opened
    connection.hold()
    for n in range(QUEUE + 1):
        connection.push(f"live {n}")
    assert await peer.next() == ("close", *CloseCode.SLOW_CONSUMER.value)
    connection.release(["ready"])
    assert peer.sent.empty()


async def test_finish_sends_what_is_queued_then_the_close_frame(opened: tuple[Connection, Peer]) -> None:
    connection, peer = opened
    await stalled(connection, peer)
    connection.push("second")
    connection.finish(CloseCode.SERVICE_RESTART)
    connection.push("after finish")
    peer.gate.set()
    assert [await peer.next() for _ in range(3)] == ["first", "second", ("close", 1012, "service restart")]


async def test_cut_drops_what_is_queued_and_closes_at_once(opened: tuple[Connection, Peer]) -> None:
    connection, peer = opened
    await stalled(connection, peer)
    connection.push("second")
    connection.cut(CloseCode.TOO_MANY_SOCKETS)
    peer.gate.set()
    assert [await peer.next() for _ in range(2)] == ["first", ("close", *CloseCode.TOO_MANY_SOCKETS.value)]
    assert connection.close_code == 1008
