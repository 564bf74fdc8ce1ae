"""``python -m bench.traced_server PREFIX [chatserver options]``: the chat server with tracemalloc on.

Each SIGUSR1 writes a snapshot to ``PREFIX.<n>`` (n = 0, 1, ...), so the ``connections`` scenario can
compare the heap with one socket open and with thousands, file by file. Tracing costs time and
memory of its own, so this runs apart from the measured servers.
"""

from __future__ import annotations

import itertools
import signal
import sys
import tracemalloc
from types import FrameType

from chatserver.cli import main as chatserver_main


def main() -> None:
    prefix = sys.argv[1]
    numbers = itertools.count()
    tracemalloc.start(1)

    def snapshot(signum: int, frame: FrameType | None) -> None:
        tracemalloc.take_snapshot().dump(f"{prefix}.{next(numbers)}")

    signal.signal(signal.SIGUSR1, snapshot)
    chatserver_main(sys.argv[2:])


if __name__ == "__main__":
    main()
