"""Room names on Redis: the names of old on one Redis, hash-tagged on a cluster so a room's keys share a slot."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from chatserver.broker.redis_names import RedisNames

ROOMS = ["global", "clan:64b8f0c1a2d3e4f5a6b7c8d9"]


@pytest.mark.parametrize("room", ROOMS)
def test_one_redis_keeps_the_names_replicas_already_use(room: str) -> None:
    names = RedisNames("chat:", sharded=False)
    assert (names.room_channel(room), names.seq_key(room)) == (f"chat:room:{room}", f"chat:seq:{room}")
    assert names.room_of(names.room_channel(room)) == room


@pytest.mark.parametrize("room", ROOMS)
def test_on_a_cluster_a_rooms_channel_and_counter_share_one_slot(room: str) -> None:
    names = RedisNames("chat:", sharded=True)
    channel, counter = names.room_channel(room), names.seq_key(room)
    assert channel == f"chat:room:{{{room}}}"
    assert key_slot(channel.encode()) == key_slot(counter.encode())
    assert names.room_of(channel) == room


def test_channels_that_are_not_a_rooms_carry_no_room() -> None:
    for names in (RedisNames("chat:", sharded=False), RedisNames("chat:", sharded=True)):
        assert names.room_of(names.membership) is None
        assert names.room_of("other:room:global") is None
    assert RedisNames("chat:", sharded=True).room_of("chat:room:global") is None
