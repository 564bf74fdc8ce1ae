"""The retention TTL index on ``ChatMessage.createdAt``, made so it never clashes with the game's own.

The game backend declares ``{createdAt: 1}`` with ``expireAfterSeconds: 259200`` (3 days) on the shared
collection. MongoDB refuses a second declaration of the same key with other options (an options
conflict), so before creating anything this looks at the indexes already there:

- a single-field ``createdAt`` index that already expires documents is kept as it is (whoever made it);
- a plain ``{createdAt: 1}`` index cannot take ours beside it: it is kept, and a warning says MongoDB
  will not delete old messages (reads still hide them);
- otherwise ``{createdAt: 1}`` is created with ``expireAfterSeconds`` = ``CHAT_RETENTION``, named
  ``createdAt_1`` as mongoose names it, so the game's declaration of the same policy is a no-op.

Reads filter on the retention themselves, so what a client sees never depends on which index deletes.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

log = logging.getLogger(__name__)

FIELD = "createdAt"


async def ensure_retention_index(collection: Any, retention: timedelta | None) -> None:
    """Make sure MongoDB deletes messages past ``retention``; nothing at all without a retention."""
    if retention is None:
        return
    seconds = int(retention.total_seconds())
    existing = await collection.index_information()
    on_created_at = {name: info for name, info in existing.items() if _keys(info) == [FIELD]}
    expiring = {name: info for name, info in on_created_at.items() if "expireAfterSeconds" in info}
    if expiring:
        name, info = next(iter(expiring.items()))
        if int(info["expireAfterSeconds"]) != seconds:
            log.warning(
                "ChatMessage already has the TTL index %s (%ss); kept as it is. Reads hide messages older than "
                "CHAT_RETENTION (%ss); MongoDB deletes them after the index's time",
                name,
                info["expireAfterSeconds"],
                seconds,
            )
        return
    if any(_directions(info) == [1] for info in on_created_at.values()):
        log.warning(
            "ChatMessage has a plain {createdAt: 1} index, so no TTL index can be added beside it: reads hide "
            "messages older than CHAT_RETENTION (%ss) but MongoDB does not delete them",
            seconds,
        )
        return
    await collection.create_index([(FIELD, 1)], expireAfterSeconds=seconds)
    log.info("TTL index createdAt_1 on ChatMessage expires messages after %ss", seconds)


def _keys(info: dict[str, Any]) -> list[str]:
    return [key for key, _ in info["key"]]


def _directions(info: dict[str, Any]) -> list[Any]:
    return [direction for _, direction in info["key"]]
