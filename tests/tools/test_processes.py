"""``tools.processes``: a child counts as started only when it is the process serving its port."""

from __future__ import annotations

import os
import signal
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from tests.support.harness import ServerProcess
from tools.processes import ManagedProcess, ProcessError, check_can_listen, free_port, http_ok, listens_on


def test_a_child_is_not_ready_while_another_process_answers_on_its_port(
    embedded_server: ServerProcess, tmp_path: Path
) -> None:
    port = embedded_server.port
    child = ManagedProcess(
        "impostor",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        tmp_path / "impostor.log",
        partial(http_ok, f"{embedded_server.http_url}/healthz"),
        port=port,
    )
    with pytest.raises(ProcessError) as failed:
        child.start(timeout=1)

    assert failed.value.summary == f"impostor was not serving on port {port} after 1s (log {tmp_path / 'impostor.log'})"
    assert not child.running, "a child that never served is stopped"


def test_a_child_that_exits_before_serving_is_reported_with_its_last_words(tmp_path: Path) -> None:
    log = tmp_path / "quitter.log"
    argv = [sys.executable, "-c", "import sys; sys.exit('no config found')"]
    child = ManagedProcess("quitter", argv, log, ready=lambda: False)

    with pytest.raises(ProcessError) as failed:
        child.start()

    assert failed.value.summary == f"quitter exited with status 1: no config found (log {log})"


def test_the_server_process_is_the_one_listening_on_its_port(embedded_server: ServerProcess) -> None:
    assert embedded_server.process is not None
    assert listens_on(embedded_server.process.pid, embedded_server.port)
    assert not listens_on(embedded_server.process.pid, free_port())


def test_a_port_in_use_cannot_be_listened_on_and_a_free_one_can(embedded_server: ServerProcess) -> None:
    with pytest.raises(ProcessError) as failed:
        check_can_listen("127.0.0.1", embedded_server.port)
    assert failed.value.summary == f"cannot listen on 127.0.0.1:{embedded_server.port}: address already in use"
    check_can_listen("127.0.0.1", free_port())


def test_free_port_avoids_the_ports_it_is_told_to() -> None:
    taken = {free_port() for _ in range(5)}
    assert free_port(avoid=taken) not in taken


def test_stopping_a_child_that_was_killed_also_ends_what_it_left_running(tmp_path: Path) -> None:
    """As nginx workers outlive a SIGKILLed master: they hold the port until someone ends them."""
    leaves_one_behind = (
        "import subprocess, sys, time\n"
        "worker = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(worker.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    log = tmp_path / "master.log"
    master = ManagedProcess("master", [sys.executable, "-c", leaves_one_behind], log, lambda: log.read_text() != "")
    master.start()
    worker = int(log.read_text())
    assert master.pid is not None
    os.kill(master.pid, signal.SIGKILL)

    assert master.stop() == -signal.SIGKILL
    assert ends_soon(worker), f"process {worker} is still running"


def ends_soon(pid: int, timeout: float = 5.0) -> bool:
    """Whether ``pid`` is gone (or a zombie left for its new parent) within ``timeout``: SIGKILL takes a moment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def test_a_child_that_ended_on_its_own_starts_again_with_its_log_appended(tmp_path: Path) -> None:
    log = tmp_path / "once.log"
    child = ManagedProcess("once", [sys.executable, "-c", "print('ran')"], log)
    child.start()
    deadline = time.monotonic() + 10
    while child.running and time.monotonic() < deadline:
        time.sleep(0.02)

    child.start()

    assert child.finish() == 0
    assert log.read_text() == "ran\nran\n"
