"""``python -m bench.profiled_server OUTPUT [chatserver options]``: the chat server with pyinstrument inside.

py-spy (sampling from outside) is not installed on the benchmark machines, so the server profiles
itself: SIGUSR1 starts pyinstrument's sampler, SIGUSR2 stops it and saves the session to ``OUTPUT``
(``pyinstrument --load OUTPUT`` renders it). Only the window between the two signals is sampled,
so the start-up and the thousand handshakes before a flood do not drown the fan-out path.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

from pyinstrument import Profiler

from chatserver.cli import main as chatserver_main

INTERVAL_SECONDS = 0.001


def main() -> None:
    output = Path(sys.argv[1])
    profiler = Profiler(interval=INTERVAL_SECONDS, async_mode="disabled")

    def start(signum: int, frame: FrameType | None) -> None:
        if not profiler.is_running:
            profiler.start()

    def stop(signum: int, frame: FrameType | None) -> None:
        if profiler.is_running:
            profiler.stop().save(str(output))

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    chatserver_main(sys.argv[2:])


if __name__ == "__main__":
    main()
