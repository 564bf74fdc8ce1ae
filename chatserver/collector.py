"""The garbage collector: every pass timed as a metric, and what start-up built frozen out of later passes.

A pass stops the worker: every socket waits for it. A full pass walks every tracked object, and a
worker that has started holds many it will keep for its whole life (modules, settings, routes, the
vocabulary); ``gc.freeze()`` once start-up is done moves them out of every later pass, so a full
pass walks only what was made since (sockets, rooms, stored messages). Measured in
bench/README.md, "The garbage collector".
"""

from __future__ import annotations

import gc
import time
from typing import Any

from chatserver import metrics


class PauseTimer:
    """A ``gc.callbacks`` entry: times each pass into ``chat_gc_pause_seconds``."""

    def __init__(self) -> None:
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            metrics.GC_PAUSES.labels(str(info["generation"])).observe(time.perf_counter() - self._started)


def time_passes() -> None:
    """Time every pass from now on (once per process, however often it is called)."""
    if not any(isinstance(callback, PauseTimer) for callback in gc.callbacks):
        gc.callbacks.append(PauseTimer())


def freeze_startup() -> None:
    """Collect once, then keep everything alive now out of later passes (start-up is over)."""
    gc.collect()
    gc.freeze()
