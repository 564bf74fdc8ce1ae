"""A real ``redis-server`` on a free port for the broker tests, which can stop and start it again on that port."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from tools.cluster import redis_answers
from tools.processes import LOCALHOST, ManagedProcess, free_port, program


class RedisServer:
    """One ``redis-server`` without persistence: a restart forgets everything, as a fresh pod would."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        argv = [program("redis-server"), "--port", str(self.port), "--bind", LOCALHOST]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
        ready = partial(redis_answers, self.url)
        self.process = ManagedProcess("redis", argv, workdir / f"redis-{self.port}.log", ready, port=self.port)

    @property
    def url(self) -> str:
        return f"redis://{LOCALHOST}:{self.port}/0"

    def start(self) -> RedisServer:
        self.process.start()
        return self

    def stop(self) -> None:
        self.process.stop()
