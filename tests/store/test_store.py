"""One contract for every ``MessageStore``, run over each implementation as uvicorn runs its WebSocket suite.

``memory`` is the embedded store, ``wire`` is ``MongoStore`` through real PyMongo to the MongoDB wire-protocol
stand-in (``tests/support/mongo_standin.py``), and ``mongodb`` is ``MongoStore`` on a real server, run when
``MONGODB_URL`` is set (each test gets a fresh database, dropped afterwards). The last block checks what
only MongoDB has: the game's document layout, indexes, documents written by the old backend, and outages.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.errors import ServerSelectionTimeoutError

from chatserver.protocol.vocabulary import RoomKey
from chatserver.store.base import (
    EventDraft,
    MessageStore,
    MessageTarget,
    NewMessage,
    ReactionChange,
    StoredMessage,
    StoredReaction,
    StoreUnavailable,
)
from chatserver.store.documents import ChatMessageDocument
from chatserver.store.memory import MemoryStore
from chatserver.store.mongo import MongoStore

GLOBAL = RoomKey.global_room()
CLAN_A = RoomKey.clan("665af23e5e982f0013aa7a01")
CLAN_B = RoomKey.clan("665af23e5e982f0013aa7b02")
ALICE = "665af23e5e982f0013aa0001"
BOB = "665af23e5e982f0013aa0002"
AVATAR = {"head": {"id": 1, "color": "#ff0000"}, "skinColor": "#aabbcc"}


def fresh_database_name() -> str:
    return f"chat_test_{uuid.uuid4().hex[:16]}"


async def open_mongo(url: str) -> AsyncIterator[MongoStore]:
    """A ``MongoStore`` on a fresh database, dropped afterwards."""
    database = fresh_database_name()
    store = MongoStore(url, database)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
        await client.drop_database(database)
        await client.close()


def mongodb_url() -> str:
    """The real server to run against; the only place the suite reads the environment."""
    url = os.environ.get("MONGODB_URL")
    if not url:
        pytest.skip("MONGODB_URL is not set: no real MongoDB server to run the contract against")
    return url


def backend_url(request: pytest.FixtureRequest) -> str:
    if request.param == "wire":
        url: str = request.getfixturevalue("mongo_standin_url")
        return url
    return mongodb_url()


@pytest.fixture(params=["memory", "wire", "mongodb"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[MessageStore]:
    if request.param == "memory":
        yield MemoryStore(max_messages=10_000)
        return
    async for opened in open_mongo(backend_url(request)):
        yield opened


@pytest.fixture(params=["wire", "mongodb"])
async def mongo_store(request: pytest.FixtureRequest) -> AsyncIterator[MongoStore]:
    async for opened in open_mongo(backend_url(request)):
        yield opened


def new_message(room: RoomKey, content: str = "hello", sender: str = ALICE, feeling: str | None = None) -> NewMessage:
    return NewMessage(
        room=room, sender_id=sender, sender_name="Alice", sender_avatar=AVATAR, content=content, feeling=feeling
    )


async def post(store: MessageStore, room: RoomKey, count: int) -> list[StoredMessage]:
    """``count`` messages in ``room``, oldest first, named ``m0``, ``m1``..."""
    return [await store.add(new_message(room, f"m{i}")) for i in range(count)]


def contents(messages: list[StoredMessage]) -> list[str]:
    return [m.content for m in messages]


def react(message: StoredMessage, sender: str, name: str, emoji: str | None) -> ReactionChange:
    return ReactionChange(message_id=message.id, sender_id=sender, player_name=name, emoji=emoji)


# --- The contract: every store -------------------------------------------------------------------------


async def test_add_returns_the_message_with_id_timestamps_and_fields(store: MessageStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    message = await store.add(new_message(CLAN_A, "hi clan", feeling="happy"))

    assert ObjectId.is_valid(message.id)
    assert message.room == CLAN_A
    assert (message.sender_id, message.sender_name, message.sender_avatar) == (ALICE, "Alice", AVATAR)
    assert (message.content, message.feeling, message.reactions) == ("hi clan", "happy", ())
    assert message.created_at == message.updated_at
    assert message.created_at.tzinfo is not None and before <= message.created_at <= datetime.now(UTC)
    assert message.created_at.microsecond % 1000 == 0
    page = await store.page(CLAN_A, limit=10, offset=0)
    assert page.messages == [message]


async def test_a_player_id_that_is_not_an_object_id_is_kept_as_is(store: MessageStore) -> None:
    message = await store.add(new_message(GLOBAL, sender="guest-42"))
    assert message.sender_id == "guest-42"
    assert (await store.page(GLOBAL, 1, 0)).messages[0].sender_id == "guest-42"


async def test_page_is_newest_first_with_offset_and_the_room_total(store: MessageStore) -> None:
    await post(store, GLOBAL, 5)
    await post(store, CLAN_A, 2)

    first = await store.page(GLOBAL, limit=2, offset=0)
    second = await store.page(GLOBAL, limit=2, offset=2)
    last = await store.page(GLOBAL, limit=2, offset=4)
    beyond = await store.page(GLOBAL, limit=2, offset=10)

    assert (contents(first.messages), first.total) == (["m4", "m3"], 5)
    assert (contents(second.messages), second.total) == (["m2", "m1"], 5)
    assert (contents(last.messages), last.total) == (["m0"], 5)
    assert (beyond.messages, beyond.total) == ([], 5)


async def test_an_empty_room_has_an_empty_page(store: MessageStore) -> None:
    page = await store.page(CLAN_B, limit=20, offset=0)
    assert (page.messages, page.total) == ([], 0)


async def test_rooms_are_isolated(store: MessageStore) -> None:
    await store.add(new_message(CLAN_A, "for A"))
    await store.add(new_message(CLAN_B, "for B"))
    await store.add(new_message(GLOBAL, "for all"))

    for room, expected in ((CLAN_A, ["for A"]), (CLAN_B, ["for B"]), (GLOBAL, ["for all"])):
        page = await store.page(room, limit=10, offset=0)
        assert (contents(page.messages), page.total) == (expected, 1)
        assert all(m.room == room for m in page.messages)


async def test_a_reaction_through_the_wrong_room_is_none_and_changes_nothing(store: MessageStore) -> None:
    clan_message = await store.add(new_message(CLAN_A))
    global_message = await store.add(new_message(GLOBAL))

    assert await store.react(CLAN_B, react(clan_message, BOB, "Bob", "👍")) is None
    assert await store.react(GLOBAL, react(clan_message, BOB, "Bob", "👍")) is None
    assert await store.react(CLAN_A, react(global_message, BOB, "Bob", "👍")) is None
    assert (await store.page(CLAN_A, 1, 0)).messages[0].reactions == ()
    assert (await store.page(GLOBAL, 1, 0)).messages[0].reactions == ()


async def test_a_reaction_on_an_unknown_or_malformed_id_is_none(store: MessageStore) -> None:
    unknown = ReactionChange(message_id=str(ObjectId()), sender_id=BOB, player_name="Bob", emoji="👍")
    malformed = ReactionChange(message_id="not-an-id", sender_id=BOB, player_name="Bob", emoji="👍")
    assert await store.react(GLOBAL, unknown) is None
    assert await store.react(GLOBAL, malformed) is None


async def test_page_before_continues_below_a_message_in_the_middle(store: MessageStore) -> None:
    messages = await post(store, CLAN_A, 6)
    await post(store, CLAN_B, 3)

    older = await store.page_before(CLAN_A, messages[4].id, limit=3)

    assert older is not None
    assert (contents(older.messages), older.total) == (["m3", "m2", "m1"], 6)


async def test_page_before_stops_at_the_oldest_message(store: MessageStore) -> None:
    messages = await post(store, GLOBAL, 3)

    near_end = await store.page_before(GLOBAL, messages[1].id, limit=5)
    at_end = await store.page_before(GLOBAL, messages[0].id, limit=5)

    assert near_end is not None and contents(near_end.messages) == ["m0"]
    assert at_end is not None and (at_end.messages, at_end.total) == ([], 3)


async def test_page_before_walks_a_room_back_to_front(store: MessageStore) -> None:
    await post(store, GLOBAL, 7)
    newest = (await store.page(GLOBAL, limit=3, offset=0)).messages
    seen, last_id = contents(newest), newest[-1].id
    while True:
        older = await store.page_before(GLOBAL, last_id, limit=3)
        assert older is not None
        if not older.messages:
            break
        seen += contents(older.messages)
        last_id = older.messages[-1].id
    assert seen == [f"m{i}" for i in range(6, -1, -1)]


async def test_page_before_an_unknown_foreign_or_malformed_cursor_is_none(store: MessageStore) -> None:
    clan_message = await store.add(new_message(CLAN_A))
    global_message = await store.add(new_message(GLOBAL))

    assert await store.page_before(CLAN_A, str(ObjectId()), limit=5) is None
    assert await store.page_before(CLAN_B, clan_message.id, limit=5) is None
    assert await store.page_before(GLOBAL, clan_message.id, limit=5) is None
    assert await store.page_before(CLAN_A, global_message.id, limit=5) is None
    assert await store.page_before(CLAN_A, "zzz", limit=5) is None
    assert await store.page_before(CLAN_A, clan_message.id.upper(), limit=5) is None


async def test_a_reaction_is_added_with_the_players_name_and_id(store: MessageStore) -> None:
    message = await store.add(new_message(GLOBAL))

    reacted = await store.react(GLOBAL, react(message, BOB, "Bob", "👍"))

    assert reacted is not None
    assert reacted.reactions == (StoredReaction("Bob", "👍", BOB),)
    assert reacted.updated_at >= message.updated_at and reacted.created_at == message.created_at
    assert (await store.page(GLOBAL, 1, 0)).messages[0] == reacted


async def test_a_new_emoji_replaces_the_players_reaction_and_moves_it_to_the_end(store: MessageStore) -> None:
    message = await store.add(new_message(CLAN_A))
    await store.react(CLAN_A, react(message, BOB, "Bob", "👍"))
    await store.react(CLAN_A, react(message, ALICE, "Alice", "❤️"))

    reacted = await store.react(CLAN_A, react(message, BOB, "Bob", "😂"))

    assert reacted is not None
    assert reacted.reactions == (StoredReaction("Alice", "❤️", ALICE), StoredReaction("Bob", "😂", BOB))


async def test_the_same_emoji_again_leaves_the_reaction_in_place(store: MessageStore) -> None:
    message = await store.add(new_message(CLAN_A))
    await store.react(CLAN_A, react(message, BOB, "Bob", "👍"))
    await store.react(CLAN_A, react(message, ALICE, "Alice", "❤️"))

    reacted = await store.react(CLAN_A, react(message, BOB, "Bob", "👍"))

    assert reacted is not None
    assert reacted.reactions == (StoredReaction("Bob", "👍", BOB), StoredReaction("Alice", "❤️", ALICE))


async def test_no_emoji_removes_the_players_reaction(store: MessageStore) -> None:
    message = await store.add(new_message(GLOBAL))
    await store.react(GLOBAL, react(message, BOB, "Bob", "👍"))
    await store.react(GLOBAL, react(message, ALICE, "Alice", "❤️"))

    reacted = await store.react(GLOBAL, react(message, BOB, "Bob", None))

    assert reacted is not None and reacted.reactions == (StoredReaction("Alice", "❤️", ALICE),)


async def test_removing_a_reaction_that_does_not_exist_returns_the_message_unchanged(store: MessageStore) -> None:
    message = await store.add(new_message(GLOBAL))
    await store.react(GLOBAL, react(message, ALICE, "Alice", "❤️"))

    reacted = await store.react(GLOBAL, react(message, BOB, "Bob", None))

    assert reacted is not None and reacted.id == message.id
    assert reacted.reactions == (StoredReaction("Alice", "❤️", ALICE),)


async def test_values_that_look_like_field_paths_are_stored_literally(store: MessageStore) -> None:
    message = await store.add(new_message(GLOBAL))

    reacted = await store.react(GLOBAL, react(message, "$sender_id", "$content", "👍"))
    again = await store.react(GLOBAL, react(message, "$sender_id", "$content", "👍"))

    assert reacted is not None and reacted.reactions == (StoredReaction("$content", "👍", "$sender_id"),)
    assert again is not None and again.reactions == reacted.reactions


async def test_fifty_concurrent_reactions_from_fifty_players_all_survive(store: MessageStore) -> None:
    message = await store.add(new_message(GLOBAL))
    players = [f"{i:024x}" for i in range(1, 51)]

    results = await asyncio.gather(*(store.react(GLOBAL, react(message, p, f"P{p[-2:]}", "🔥")) for p in players))

    assert all(result is not None for result in results)
    stored = (await store.page(GLOBAL, 1, 0)).messages[0]
    assert sorted(r.sender_id for r in stored.reactions) == players


async def test_changes_since_are_the_rooms_messages_changed_after_the_moment_oldest_change_first(
    store: MessageStore,
) -> None:
    m0, m1, m2 = await post(store, CLAN_A, 3)
    await store.add(new_message(CLAN_B, "other clan"))
    await asyncio.sleep(0.002)  # the reaction's updatedAt is a later millisecond than every post
    reacted = await store.react(CLAN_A, react(m0, BOB, "Bob", "🔥"))
    assert reacted is not None

    since_start = await store.changes_since(CLAN_A, m0.created_at - timedelta(milliseconds=1), 10)
    assert (contents(since_start.messages), since_start.complete) == (["m1", "m2", "m0"], True)
    assert since_start.messages[-1] == reacted
    after_posts = await store.changes_since(CLAN_A, m2.updated_at, 10)
    assert (after_posts.messages, after_posts.complete) == ([reacted], True)
    assert (await store.changes_since(CLAN_A, reacted.updated_at, 10)).messages == []
    assert contents((await store.changes_since(CLAN_B, m0.created_at - timedelta(milliseconds=1), 10)).messages) == [
        "other clan"
    ]
    assert m1.updated_at <= m2.updated_at


async def test_every_change_gets_its_own_later_updated_at(store: MessageStore) -> None:
    """Changes faster than a millisecond still get distinct times, so a resume point is never ambiguous."""
    posted = await post(store, GLOBAL, 20)
    reacted = [await store.react(GLOBAL, react(m, BOB, "Bob", "👍")) for m in posted[:5]]
    stamps = [m.updated_at for m in posted] + [m.updated_at for m in reacted if m is not None]
    assert stamps == sorted(stamps) and len(set(stamps)) == 25
    assert all(stamp.microsecond % 1000 == 0 for stamp in stamps)


async def test_changes_since_over_the_limit_keeps_the_newest_and_says_incomplete(store: MessageStore) -> None:
    posted = await post(store, GLOBAL, 5)
    newest = await store.changes_since(GLOBAL, posted[0].created_at - timedelta(milliseconds=1), 3)
    assert (contents(newest.messages), newest.complete) == (["m2", "m3", "m4"], False)
    exact = await store.changes_since(GLOBAL, posted[0].created_at - timedelta(milliseconds=1), 5)
    assert (contents(exact.messages), exact.complete) == (["m0", "m1", "m2", "m3", "m4"], True)


async def test_an_edit_by_the_sender_replaces_the_content_with_edited_at_and_a_later_updated_at(
    store: MessageStore,
) -> None:
    message = await store.add(new_message(CLAN_A, "first words", feeling="happy"))
    await store.react(CLAN_A, react(message, BOB, "Bob", "🔥"))

    edited = await store.edit(MessageTarget(message.id, CLAN_A, ALICE), "better words")

    assert edited is not None
    assert (edited.content, edited.feeling, edited.created_at) == ("better words", "happy", message.created_at)
    assert edited.reactions == (StoredReaction("Bob", "🔥", BOB),)
    assert edited.edited_at == edited.updated_at and edited.updated_at > message.updated_at
    assert (await store.page(CLAN_A, 10, 0)).messages == [edited]


async def test_an_edit_or_deletion_by_another_player_or_through_another_room_is_none_and_changes_nothing(
    store: MessageStore,
) -> None:
    message = await store.add(new_message(CLAN_A, "mine"))
    unknown = str(ObjectId())

    for target in (
        MessageTarget(message.id, CLAN_A, BOB),
        MessageTarget(message.id, CLAN_B, ALICE),
        MessageTarget(message.id, GLOBAL, ALICE),
        MessageTarget(unknown, CLAN_A, ALICE),
        MessageTarget("not-an-id", CLAN_A, ALICE),
    ):
        assert await store.edit(target, "changed") is None
        assert await store.delete(target) is None
    assert (await store.page(CLAN_A, 10, 0)).messages == [message]


async def test_a_deleted_message_is_a_tombstone_gone_from_history_totals_and_reactions(store: MessageStore) -> None:
    m0, m1, m2 = await post(store, GLOBAL, 3)
    await store.react(GLOBAL, react(m1, BOB, "Bob", "👍"))

    tombstone = await store.delete(MessageTarget(m1.id, GLOBAL, ALICE))

    assert tombstone is not None
    assert (tombstone.id, tombstone.content, tombstone.feeling, tombstone.reactions) == (m1.id, "", None, ())
    assert tombstone.deleted_at == tombstone.updated_at and tombstone.updated_at > m1.updated_at
    page = await store.page(GLOBAL, 10, 0)
    assert (contents(page.messages), page.total) == (["m2", "m0"], 2)
    below = await store.page_before(GLOBAL, m1.id, 10)
    assert below is not None and (contents(below.messages), below.total) == (["m0"], 2)
    assert contents((await store.page_before(GLOBAL, m2.id, 10) or below).messages) == ["m0"]
    assert await store.react(GLOBAL, react(m1, BOB, "Bob", "🔥")) is None
    assert await store.edit(MessageTarget(m1.id), "back again") is None
    assert await store.delete(MessageTarget(m1.id)) is None


async def test_a_deletion_is_a_change_that_changes_since_returns(store: MessageStore) -> None:
    m0, m1 = await post(store, CLAN_A, 2)

    tombstone = await store.delete(MessageTarget(m0.id))

    changes = await store.changes_since(CLAN_A, m1.updated_at, 10)
    assert (changes.messages, changes.complete) == ([tombstone], True)


async def test_get_finds_a_live_message_through_its_room_and_never_a_tombstone(store: MessageStore) -> None:
    message = await store.add(new_message(CLAN_A, "look at this"))
    gone = await store.add(new_message(CLAN_A, "gone"))
    await store.delete(MessageTarget(gone.id))

    assert await store.get(MessageTarget(message.id, CLAN_A)) == message
    assert await store.get(MessageTarget(message.id)) == message
    assert await store.get(MessageTarget(message.id, CLAN_B)) is None
    assert await store.get(MessageTarget(message.id, CLAN_A, BOB)) is None
    assert await store.get(MessageTarget(gone.id, CLAN_A)) is None
    assert await store.get(MessageTarget("$where", CLAN_A)) is None


async def test_a_moderator_target_matches_any_sender_in_any_room(store: MessageStore) -> None:
    clan_message = await store.add(new_message(CLAN_B, "theirs", sender=BOB))

    tombstone = await store.delete(MessageTarget(clan_message.id))

    assert tombstone is not None and tombstone.room == CLAN_B and tombstone.sender_id == BOB
    assert (await store.page(CLAN_B, 10, 0)).total == 0


async def test_concurrent_reactions_and_a_deletion_leave_a_tombstone_without_reactions(store: MessageStore) -> None:
    message = await store.add(new_message(GLOBAL))
    players = [f"{i:024x}" for i in range(1, 21)]

    await asyncio.gather(
        *(store.react(GLOBAL, react(message, p, "P", "🔥")) for p in players[:10]),
        store.delete(MessageTarget(message.id, GLOBAL, ALICE)),
        *(store.react(GLOBAL, react(message, p, "P", "🔥")) for p in players[10:]),
    )

    changed = await store.changes_since(GLOBAL, message.created_at, 10)
    assert [(m.id, m.reactions, m.deleted_at is not None) for m in changed.messages] == [(message.id, (), True)]


async def test_a_change_keeps_its_event_in_the_outbox_until_it_is_sent(store: MessageStore) -> None:
    created = EventDraft("e-created", "message.created", ALICE, {"feeling": "Happy"})
    reacted = EventDraft("e-reacted", "reaction.set", BOB, {"emoji": "👍"})
    message = await store.add(new_message(CLAN_A, "hi"), created)
    changed = await store.react(CLAN_A, react(message, BOB, "Bob", "👍"), reacted)
    assert changed is not None

    assert [(p.draft, p.at) for p in changed.pending] == [
        (created, message.created_at),
        (reacted, changed.updated_at),
    ]
    later = changed.updated_at + timedelta(seconds=1)
    assert [m.id for m in await store.pending_events(later, 10)] == [message.id]
    assert await store.pending_events(message.created_at, 10) == []  # nothing older than its own stamp

    await store.events_sent(message.id, ["e-created"])
    waiting = await store.pending_events(later, 10)
    assert [[p.draft.id for p in m.pending] for m in waiting] == [["e-reacted"]]
    await store.events_sent(message.id, ["e-reacted"])
    assert await store.pending_events(later, 10) == []
    assert (await store.page(CLAN_A, 10, 0)).messages[0].pending == ()


# --- Only the embedded store ---------------------------------------------------------------------------


async def test_the_memory_store_drops_the_oldest_message_when_full() -> None:
    store = MemoryStore(max_messages=3)
    first = await store.add(new_message(CLAN_A, "a0"))
    await store.add(new_message(GLOBAL, "g0"))
    await store.add(new_message(CLAN_A, "a1"))
    await store.add(new_message(GLOBAL, "g1"))

    clan = await store.page(CLAN_A, 10, 0)
    assert (contents(clan.messages), clan.total) == (["a1"], 1)
    assert contents((await store.page(GLOBAL, 10, 0)).messages) == ["g1", "g0"]
    assert await store.page_before(CLAN_A, first.id, 10) is None
    assert await store.react(CLAN_A, react(first, BOB, "Bob", "👍")) is None
    since = first.created_at - timedelta(milliseconds=1)
    assert contents((await store.changes_since(CLAN_A, since, 10)).messages) == ["a1"]


async def test_the_memory_store_drops_tombstones_in_turn_when_full() -> None:
    store = MemoryStore(max_messages=2)
    first = await store.add(new_message(CLAN_A, "a0"))
    await store.delete(MessageTarget(first.id))
    await store.add(new_message(CLAN_A, "a1"))
    await store.add(new_message(CLAN_A, "a2"))

    since = first.created_at - timedelta(milliseconds=1)
    assert contents((await store.changes_since(CLAN_A, since, 10)).messages) == ["a1", "a2"]
    page = await store.page(CLAN_A, 10, 0)
    assert (contents(page.messages), page.total) == (["a2", "a1"], 2)
    lone = await store.add(new_message(CLAN_B, "b0"))
    await store.delete(MessageTarget(lone.id))
    await store.add(new_message(GLOBAL, "g0"))
    await store.add(new_message(GLOBAL, "g1"))
    assert (await store.changes_since(CLAN_B, since, 10)).messages == []


# --- Only MongoDB: the game's layout, indexes, the old backend's documents, outages ---------------------


async def test_documents_are_stored_in_the_games_layout(mongo_store: MongoStore) -> None:
    clan_message = await mongo_store.add(new_message(CLAN_A, "hi", feeling="Happy"))
    global_message = await mongo_store.add(new_message(GLOBAL, "all", sender="guest-7"))
    await mongo_store.react(CLAN_A, react(clan_message, BOB, "Bob", "👍"))
    collection = ChatMessageDocument.get_pymongo_collection()

    clan_raw = await collection.find_one({"_id": ObjectId(clan_message.id)})
    global_raw = await collection.find_one({"_id": ObjectId(global_message.id)})

    assert clan_raw is not None and global_raw is not None
    assert set(clan_raw) == {
        "_id", "type", "sender_id", "content", "feeling", "clan_id", "reactions", "createdAt", "updatedAt",
        "senderProfile",
    }  # fmt: skip
    assert clan_raw["type"] == "clan" and clan_raw["clan_id"] == CLAN_A.clan_id
    assert isinstance(clan_raw["clan_id"], str)
    assert clan_raw["sender_id"] == ObjectId(ALICE)
    assert clan_raw["feeling"] == "Happy"
    assert clan_raw["reactions"] == [{"playerName": "Bob", "emoji": "👍", "sender_id": BOB}]
    assert isinstance(clan_raw["createdAt"], datetime) and clan_raw["updatedAt"] >= clan_raw["createdAt"]
    assert clan_raw["senderProfile"] == {"name": "Alice", "avatar": AVATAR}
    assert global_raw["type"] == "global" and global_raw["sender_id"] == "guest-7"
    assert "clan_id" not in global_raw and "feeling" not in global_raw and "sender" not in global_raw


async def test_edits_and_tombstones_keep_the_games_layout_with_two_added_dates(mongo_store: MongoStore) -> None:
    edited = await mongo_store.add(new_message(CLAN_A, "hi", feeling="Happy"))
    deleted = await mongo_store.add(new_message(CLAN_A, "bye", feeling="Sad"))
    await mongo_store.react(CLAN_A, react(deleted, BOB, "Bob", "👍"))
    await mongo_store.edit(MessageTarget(edited.id, CLAN_A, ALICE), "hello")
    await mongo_store.delete(MessageTarget(deleted.id, CLAN_A, ALICE))
    collection = ChatMessageDocument.get_pymongo_collection()

    edited_raw = await collection.find_one({"_id": ObjectId(edited.id)})
    deleted_raw = await collection.find_one({"_id": ObjectId(deleted.id)})

    assert edited_raw is not None and deleted_raw is not None
    assert (edited_raw["content"], edited_raw["feeling"]) == ("hello", "Happy")
    assert edited_raw["editedAt"] == edited_raw["updatedAt"] and "deletedAt" not in edited_raw
    assert (deleted_raw["content"], deleted_raw["reactions"], deleted_raw["sender_id"]) == ("", [], ObjectId(ALICE))
    assert deleted_raw["deletedAt"] == deleted_raw["updatedAt"] and "feeling" not in deleted_raw


async def test_the_old_backends_message_can_be_edited_and_deleted_by_its_sender(mongo_store: MongoStore) -> None:
    collection = ChatMessageDocument.get_pymongo_collection()
    created = datetime(2025, 6, 23, 13, 3, 15, 778000)
    legacy = {"type": "global", "sender_id": ObjectId(ALICE), "content": "old", "reactions": [], "__v": 0}
    inserted = await collection.insert_one({**legacy, "createdAt": created, "updatedAt": created})
    message_id = str(inserted.inserted_id)

    edited = await mongo_store.edit(MessageTarget(message_id, GLOBAL, ALICE), "new")
    tombstone = await mongo_store.delete(MessageTarget(message_id, GLOBAL, ALICE))

    assert edited is not None and edited.content == "new"
    assert tombstone is not None and tombstone.deleted_at is not None
    assert (await mongo_store.page(GLOBAL, 10, 0)).total == 0


async def test_the_history_and_resume_indexes_exist_after_open(mongo_store: MongoStore) -> None:
    indexes = await ChatMessageDocument.get_pymongo_collection().index_information()

    keys = [list(spec["key"]) for spec in indexes.values()]

    assert [("clan_id", 1), ("createdAt", -1), ("_id", -1)] in keys
    assert [("type", 1), ("createdAt", -1), ("_id", -1)] in keys
    assert [("clan_id", 1), ("updatedAt", -1), ("_id", -1)] in keys
    assert [("type", 1), ("updatedAt", -1), ("_id", -1)] in keys
    assert [("outbox.at", 1)] in keys


async def test_a_sent_outbox_leaves_the_document_in_the_games_layout(mongo_store: MongoStore) -> None:
    message = await mongo_store.add(new_message(GLOBAL, "all"), EventDraft("e1", "message.created", ALICE))
    collection = ChatMessageDocument.get_pymongo_collection()
    waiting = await collection.find_one({"_id": ObjectId(message.id)})
    assert waiting is not None and [entry["id"] for entry in waiting["outbox"]] == ["e1"]

    await mongo_store.events_sent(message.id, ["e1"])

    sent = await collection.find_one({"_id": ObjectId(message.id)})
    assert sent is not None and "outbox" not in sent


async def test_a_document_written_by_the_old_backend_is_readable_and_reactable(mongo_store: MongoStore) -> None:
    created = datetime(2025, 3, 1, 12, 0, 0, 123000)
    legacy_id = ObjectId()
    await ChatMessageDocument.get_pymongo_collection().insert_one(
        {
            "_id": legacy_id,
            "type": "clan",
            "sender_id": ObjectId(ALICE),
            "content": "from the old server",
            "feeling": "Happy",
            "clan_id": CLAN_A.clan_id,
            "reactions": [
                {"playerName": "Old", "emoji": "👍", "sender_id": "legacy_system", "_id": ObjectId()},
                {"playerName": "Older", "emoji": "😂", "_id": ObjectId()},
            ],
            "createdAt": created,
            "updatedAt": created,
            "__v": 0,
        }
    )

    page = await mongo_store.page(CLAN_A, limit=5, offset=0)
    reacted = await mongo_store.react(CLAN_A, ReactionChange(str(legacy_id), BOB, "Bob", "❤️"))

    [message] = page.messages
    assert (message.id, message.sender_id, message.content) == (str(legacy_id), ALICE, "from the old server")
    assert (message.sender_name, message.sender_avatar) == (None, None)
    assert message.created_at == created.replace(tzinfo=UTC)
    assert message.reactions == (
        StoredReaction("Old", "👍", "legacy_system"),
        StoredReaction("Older", "😂", "legacy_system"),
    )
    assert reacted is not None and reacted.reactions[-1] == StoredReaction("Bob", "❤️", BOB)
    assert len(reacted.reactions) == 3


async def test_messages_of_the_same_millisecond_page_by_id(mongo_store: MongoStore) -> None:
    same_time = datetime(2025, 5, 5, 5, 5, 5, 5000)
    ids = sorted(ObjectId() for _ in range(4))
    await ChatMessageDocument.get_pymongo_collection().insert_many(
        [
            {"_id": oid, "type": "global", "sender_id": ObjectId(ALICE), "content": f"t{i}", "reactions": [],
             "createdAt": same_time, "updatedAt": same_time}
            for i, oid in enumerate(ids)
        ]
    )  # fmt: skip

    newest = await mongo_store.page(GLOBAL, limit=2, offset=0)
    older = await mongo_store.page_before(GLOBAL, newest.messages[-1].id, limit=5)

    assert contents(newest.messages) == ["t3", "t2"]
    assert older is not None and contents(older.messages) == ["t1", "t0"]


async def test_every_operation_reports_a_driver_error_as_store_unavailable(
    mongo_store: MongoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = await mongo_store.add(new_message(GLOBAL))
    collection = ChatMessageDocument.get_pymongo_collection()

    def down(*args: object, **kwargs: object) -> None:
        raise ServerSelectionTimeoutError("No servers found yet")

    for method in ("insert_one", "find_one_and_update", "find", "find_one", "count_documents"):
        monkeypatch.setattr(collection, method, down)

    with pytest.raises(StoreUnavailable):
        await mongo_store.add(new_message(GLOBAL))
    with pytest.raises(StoreUnavailable):
        await mongo_store.react(GLOBAL, react(message, BOB, "Bob", "👍"))
    with pytest.raises(StoreUnavailable):
        await mongo_store.page(GLOBAL, 10, 0)
    with pytest.raises(StoreUnavailable) as raised:
        await mongo_store.page_before(GLOBAL, message.id, 10)
    assert isinstance(raised.value.__cause__, ServerSelectionTimeoutError)


async def test_a_store_pointed_at_a_closed_port_fails_fast_as_unavailable() -> None:
    store = MongoStore("mongodb://127.0.0.1:1", fresh_database_name())
    started = time.monotonic()

    with pytest.raises(StoreUnavailable):
        await store.open()

    assert time.monotonic() - started < 6
    assert await store.ping() is False
    await store.close()
    with warnings.catch_warnings():
        # PyMongo 4.20 leaves unclosed the socket of a connect attempt that ``client.close()`` cancels
        # (PYTHON-5867, mongodb/mongo-python-driver#2858); it sits in a reference cycle until the next
        # collection. Collect it here, where its ResourceWarning is expected, not in a later test.
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


async def test_ping_answers_while_the_server_is_up(mongo_store: MongoStore) -> None:
    assert await mongo_store.ping() is True
    await mongo_store.close()
    assert await mongo_store.ping() is False
