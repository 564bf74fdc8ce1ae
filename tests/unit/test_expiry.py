"""Token expiry for a worker's wiki sockets: one heap, closed in expiry order, forgotten on close."""

from __future__ import annotations

import asyncio
import time

from chatserver.connection import ConnectionState
from chatserver.expiry import TokenExpiries
from chatserver.protocol.vocabulary import CloseCode
from tests.unit.sockets import open_connection, player

EXPIRED = ("close", *CloseCode.TOKEN_EXPIRED.value)


async def test_sockets_are_closed_with_4401_in_the_order_their_tokens_expire() -> None:
    expiries = TokenExpiries()
    late, late_peer = await open_connection(player("late"))
    soon, soon_peer = await open_connection(player("soon"))
    expiries.add(late, time.time() + 0.3)
    expiries.add(soon, time.time() + 0.1)
    assert await soon_peer.next() == EXPIRED
    assert late.state is ConnectionState.OPEN
    assert await late_peer.next() == EXPIRED
    assert len(expiries) == 0
    await late.stop()
    await soon.stop()


async def test_a_socket_closed_before_its_token_expires_is_forgotten_and_not_closed_again() -> None:
    expiries = TokenExpiries()
    gone, gone_peer = await open_connection(player("gone"))
    stays, stays_peer = await open_connection(player("stays"))
    expiries.add(gone, time.time() + 0.1)
    expiries.add(stays, time.time() + 0.2)
    expiries.discard(gone)
    assert await stays_peer.next() == EXPIRED
    await asyncio.sleep(0.05)
    assert gone_peer.sent.empty() and gone.state is ConnectionState.OPEN
    await gone.stop()
    await stays.stop()


async def test_the_heap_is_rebuilt_when_most_of_its_sockets_have_closed() -> None:
    expiries = TokenExpiries()
    connections = [(await open_connection(player(f"p{n}")))[0] for n in range(10)]
    for connection in connections:
        expiries.add(connection, time.time() + 3600)
    for connection in connections[:8]:
        expiries.discard(connection)
    assert len(expiries) == 2 and len(expiries._heap) <= 4
    for connection in connections:
        await connection.stop()
