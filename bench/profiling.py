"""Profiling the chat server under load with pyinstrument, and folding the session into a list of hotspots.

The server runs as ``bench.profiled_server`` (see there): the benchmark signals it to start sampling
just before the measured flood and to stop and save right after. pyinstrument samples the main
thread's stack every millisecond from inside the process, which slows the server a little, so the
profiled run is an extra run and never one of the measured ones. The saved session is folded into
self time (the leaf of each sample) and inclusive time (anywhere on the stack) per function.
"""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pyinstrument.frame import Frame
from pyinstrument.session import Session


@dataclass
class Hotspots:
    seconds: float  # sampled wall time of the main thread
    self_time: list[tuple[str, float]]  # (function (file), share of sampled time)
    inclusive: list[tuple[str, float]]
    by_file: list[tuple[str, float]]  # self time per source file


class Sampler:
    """Start and stop the sampler of a ``bench.profiled_server`` process by signal."""

    def __init__(self, pid: int, output: Path) -> None:
        self.pid = pid
        self.output = output

    def start(self) -> None:
        os.kill(self.pid, signal.SIGUSR1)

    def stop(self, timeout: float = 60.0) -> str | None:
        """Ask for the session and wait until it is written; returns a complaint if it never was."""
        os.kill(self.pid, signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.output.exists() and self.output.stat().st_size > 0:
                time.sleep(0.5)  # the save may still be writing
                return None
            time.sleep(0.1)
        return f"no profile written to {self.output} within {timeout:g}s"


def _label(frame: Frame) -> tuple[str, str]:
    path = frame.file_path_short or frame.file_path or "?"
    return f"{frame.function} ({path})", path


def hotspots(saved: Path, top: int = 15) -> Hotspots:
    """The ``top`` functions by self and by inclusive share of the sampled time."""
    root = Session.load(str(saved)).root_frame()
    own: defaultdict[str, float] = defaultdict(float)
    anywhere: defaultdict[str, float] = defaultdict(float)
    files: defaultdict[str, float] = defaultdict(float)
    if root is None:
        return Hotspots(0.0, [], [], [])

    def walk(frame: Frame, above: frozenset[str]) -> None:
        label, path = _label(frame)
        if label not in above:  # recursion counts once
            anywhere[label] += frame.time
        if frame.total_self_time:
            own[label] += frame.total_self_time
            files[path] += frame.total_self_time
        for child in frame.children:
            if not child.is_synthetic:  # "[self]" and "[await]" are already in total_self_time
                walk(child, above | {label})

    walk(root, frozenset())
    total = root.time or 1.0
    return Hotspots(
        seconds=root.time,
        self_time=[(label, t / total) for label, t in _most(own, top)],
        inclusive=[(label, t / total) for label, t in _most(anywhere, top)],
        by_file=[(name, t / total) for name, t in _most(files, top)],
    )


def _most(seconds: dict[str, float], top: int) -> list[tuple[str, float]]:
    """The ``top`` labels by seconds, largest first (a ``Counter`` holds whole numbers, these are not)."""
    return sorted(seconds.items(), key=lambda item: item[1], reverse=True)[:top]
