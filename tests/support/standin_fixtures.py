"""The MongoDB wire-protocol stand-in (``tests.support.mongo_standin``) as a process the tests start, stop and restart.

mongomock lives inside one process, so replicas started as separate ``chatserver`` processes (``Cluster``,
``ServerProcess``) cannot share it; the stand-in serves one mongomock store over TCP to all of them. Use it
by passing the URL as ``MONGODB_URL`` (give each test its own ``MONGODB_DB`` so tests stay independent) and
seed it through PyMongo, as the game backend writes its ``Player`` documents. The session fixture
``mongo_standin_url`` is registered for every test in ``tests/conftest.py``::

    def test_replicas_share_history(mongo_standin_url: str, tmp_path: Path) -> None:
        env = suite_env(MONGODB_URL=mongo_standin_url, MONGODB_DB=f"chat_test_{secrets.token_hex(4)}")
        with Cluster(2, workdir=tmp_path / "c", env=env) as cluster:
            ...

A test that needs MongoDB to go down starts its own ``MongoStandIn(log_dir, durable=True)``: ``stop()``
is the outage, ``start()`` brings it back on the same port with the data it held.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import TracebackType

import pytest

from tests.support.harness import ROOT
from tools.processes import ManagedProcess

READY_TIMEOUT = 10.0
READY_LINE = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


def _listening(log_path: Path) -> bool:
    return log_path.exists() and READY_LINE.search(log_path.read_text(errors="replace")) is not None


class MongoStandIn:
    """One stand-in process: the first start picks a free port itself, later starts reuse it.

    With ``durable`` its data survives ``stop()`` and ``start()`` (``--dbpath`` in ``log_dir``), as a
    real server's does. Output goes to ``log_dir/mongo-standin.log``, the first place to look when a
    MongoDB test fails.
    """

    def __init__(self, log_dir: Path, *, durable: bool = False) -> None:
        self.log_dir = log_dir
        self.dbpath = log_dir / "mongo-standin.bson" if durable else None
        self.port = 0
        self.child: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self) -> MongoStandIn:
        log_path = self.log_dir / f"mongo-standin-{len(list(self.log_dir.glob('mongo-standin-*.log')))}.log"
        argv = [sys.executable, "-m", "tests.support.mongo_standin", "--port", str(self.port)]
        argv += ["--dbpath", str(self.dbpath)] if self.dbpath else []
        self.child = ManagedProcess("mongo stand-in", argv, log_path, partial(_listening, log_path), cwd=ROOT)
        self.child.start(READY_TIMEOUT)
        if not self.port:
            found = READY_LINE.search(self.child.log())
            assert found is not None
            self.port = int(found.group(1))
        return self

    def stop(self) -> int | None:
        """SIGTERM (a clean stop, which saves a durable stand-in's data), SIGKILL if it hangs; the exit code."""
        return None if self.child is None else self.child.stop()

    def __enter__(self) -> MongoStandIn:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


@pytest.fixture(scope="session")
def mongo_standin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One stand-in for the whole session; every test and server process using it shares its store."""
    with MongoStandIn(tmp_path_factory.mktemp("mongo-standin")) as stand_in:
        yield stand_in.url
