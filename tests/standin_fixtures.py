"""One MongoDB wire-protocol stand-in (``tests.mongo_standin``) per test session, shared by server processes.

mongomock lives inside one process, so replicas started as separate ``chatserver`` processes (``Cluster``,
``ServerProcess``) cannot share it; the stand-in serves one mongomock store over TCP to all of them. Use it
by passing the URL as ``MONGODB_URL`` (give each test its own ``MONGODB_DB`` so tests stay independent).
Bind the fixture in the test module as below (importing the name directly makes ruff report F811 on the
test's parameter), or list ``pytest_plugins = ["tests.standin_fixtures"]`` once in ``tests/conftest.py``::

    from tests import standin_fixtures

    mongo_standin_url = standin_fixtures.mongo_standin_url  # the fixture, visible to this module's tests

    def test_replicas_share_history(mongo_standin_url: str, tmp_path: Path) -> None:
        env = suite_env(MONGODB_URL=mongo_standin_url, MONGODB_DB=f"chat_test_{secrets.token_hex(4)}")
        with Cluster(2, workdir=tmp_path / "c", env=env) as cluster:
            ...

Outside pytest, ``start_mongo_standin(log_dir)`` gives the URL and a function that stops the process, and
``mongo_standin(log_dir)`` is the same as a context manager.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.harness import ROOT, free_port

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
PORT_ATTEMPTS = 3  # ``free_port`` can race with another process taking the port before the stand-in binds it


class StandInError(RuntimeError):
    """The stand-in did not start; the message carries its log."""


def start_mongo_standin(log_dir: Path) -> tuple[str, Callable[[], int]]:
    """Start ``python -m tests.mongo_standin`` on a free port; return its URL and a ``stop()`` giving the exit code.

    Its stdout and stderr (the ready line, unknown commands, mongomock failures) go to
    ``log_dir/mongo-standin-<port>.log``, the first place to look when a MongoDB test fails.
    """
    failure = ""
    for _ in range(PORT_ATTEMPTS):
        port = free_port()
        log_path = log_dir / f"mongo-standin-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.mongo_standin", "--port", str(port)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if _wait_ready(process, log_path, port):
            return f"mongodb://127.0.0.1:{port}/?directConnection=true", lambda: _stop(process)
        _stop(process)
        failure = log_path.read_text(errors="replace")
    raise StandInError(f"the mongo stand-in did not start:\n{failure}")


def _wait_ready(process: subprocess.Popen[bytes], log_path: Path, port: int) -> bool:
    """Whether the process printed its ready line; ``False`` if it exited (say, the port was taken) or hung."""
    ready = f"listening on 127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if ready in log_path.read_text(errors="replace"):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def _stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM (a clean stop), then SIGKILL if it does not exit in time; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@contextmanager
def mongo_standin(log_dir: Path) -> Iterator[str]:
    """The stand-in's URL for the ``with`` block; the process is stopped afterwards, whatever happened."""
    url, stop = start_mongo_standin(log_dir)
    try:
        yield url
    finally:
        stop()


@pytest.fixture(scope="session")
def mongo_standin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One stand-in for the whole session; every test and server process using it shares its store."""
    with mongo_standin(tmp_path_factory.mktemp("mongo-standin")) as url:
        yield url
