"""The worker's blocklist: ``CHAT_BLOCKLIST_FILE`` read into a ``WordFilter``, re-read on SIGHUP or when it changes.

A reload that fails (the file is gone half-way through a deploy, or is not UTF-8) keeps the list in
force and logs a warning; the next change or SIGHUP tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from chatserver import metrics
from chatserver.protocol import ErrorReason
from chatserver.protocol.errors import ChatError
from chatserver.settings import BlocklistAction, SettingsError
from chatserver.wordfilter.matcher import WordFilter, masked

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
REFUSED_MESSAGE = "content contains a blocked word"


class BlocklistError(SettingsError):
    """``CHAT_BLOCKLIST_FILE`` cannot be read as a UTF-8 list of terms."""


def read_blocklist(path: Path) -> WordFilter:
    """The file as a filter; raises ``BlocklistError`` naming the variable and the problem."""
    try:
        return WordFilter(path.read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeDecodeError) as error:
        raise BlocklistError(f"CHAT_BLOCKLIST_FILE {str(path)!r} cannot be read: {error}") from None


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size, status.st_ino


class Blocklist:
    """Screens message text with the current filter (``mask`` or ``refuse``); no file means no filter."""

    def __init__(self, path: str | None, action: BlocklistAction) -> None:
        self._path = None if path is None else Path(path)
        self._action = action
        self._signature = None if self._path is None else _signature(self._path)
        self._filter = WordFilter([]) if self._path is None else read_blocklist(self._path)
        self._watcher: asyncio.Task[None] | None = None
        self._reloads: set[asyncio.Task[None]] = set()

    @property
    def size(self) -> int:
        """How many terms are in force."""
        return self._filter.size

    def screen(self, content: str) -> str:
        """``content`` as it may be stored: masked, or refused with VALIDATION on ``content``."""
        stretches = self._filter.find(content)
        if not stretches:
            return content
        metrics.FILTERED.labels(self._action.value).inc()
        if self._action is BlocklistAction.REFUSE:
            raise ChatError.of(ErrorReason.VALIDATION, "content", REFUSED_MESSAGE)
        return masked(content, stretches)

    async def start(self) -> None:
        """Watch the file and take SIGHUP as a reload request (SIGHUP would otherwise end the process)."""
        if self._path is None:
            return
        log.info("blocklist loaded", extra={"terms": self.size, "action": self._action.value})
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no SIGHUP
            loop.add_signal_handler(signal.SIGHUP, self._reload_soon)
        self._watcher = asyncio.create_task(self._watch(), name="blocklist-watcher")

    async def stop(self) -> None:
        if self._watcher is None:
            return
        self._watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watcher
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    def _reload_soon(self) -> None:
        self._reloads.add(task := asyncio.create_task(self.reload(), name="blocklist-reload"))
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> None:
        """Read the file again, off the event loop (a long list takes a moment); on failure keep the list in force."""
        assert self._path is not None
        self._signature = _signature(self._path)
        try:
            self._filter = await asyncio.to_thread(read_blocklist, self._path)
        except BlocklistError as error:
            log.warning("blocklist not reloaded, the previous list stays in force: %s", error)
            return
        log.info("blocklist reloaded", extra={"terms": self.size, "pid": os.getpid()})

    async def _watch(self) -> None:
        assert self._path is not None
        while True:
            await asyncio.sleep(POLL_SECONDS)
            if _signature(self._path) != self._signature:
                await self.reload()
