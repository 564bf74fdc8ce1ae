"""The event loop's lag as the worker measures it: late timer ticks, read between them."""

from __future__ import annotations

import asyncio
import time

from chatserver.looplag import INTERVAL_SECONDS, LoopLag


async def test_a_loop_blocked_for_a_while_reads_as_that_far_behind_then_catches_up() -> None:
    lag = LoopLag()
    lag.start()
    try:
        await asyncio.sleep(INTERVAL_SECONDS * 2)
        time.sleep(0.4)  # a worker busy with something that does not yield
        await asyncio.sleep(INTERVAL_SECONDS / 2)
        behind = lag.seconds
        assert behind >= 0.3
        await asyncio.sleep(INTERVAL_SECONDS * 4)
        assert lag.seconds < behind  # the next ticks ran on time again
    finally:
        lag.stop()
