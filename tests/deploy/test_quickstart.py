"""The README's quick start and "Try it", run as written by a newcomer on stock Debian 12.

Stock Debian means the system ``/usr/bin/python3``, whose pip refuses to install outside a
virtualenv (PEP 668 "externally-managed-environment"), and no ``python`` command: the test runs with
``PATH=/usr/bin:/bin`` in a fresh copy of the tree, checks both facts first, then runs the quick
start's first command (which installs the package from PyPI into ``.venv``) and the "Try it" block.
The second quick start command, ``scripts/test``, is what ``.ci/run`` runs on a fresh machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.test_readme import section
from tests.support.harness import ROOT, free_port

DEBIAN_PATH = "/usr/bin:/bin"
SYSTEM_PYTHON = Path("/usr/bin/python3")
INSTALL_TIMEOUT = 600.0  # creating .venv and installing the package's dependencies from PyPI
STOP_TIMEOUT = 30.0
pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT + 120)
LEFT_BEHIND = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".*_cache", "results")


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def quick_start_commands() -> list[str]:
    return [line.split("  #")[0].strip() for line in sh_blocks(section("Quick start"))[0].splitlines() if line.strip()]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of this tree, as a newcomer's clone (no .venv, no caches)."""
    copy = tmp_path_factory.mktemp("clone") / "chatserver"
    shutil.copytree(ROOT, copy, ignore=LEFT_BEHIND)
    return copy


def debian_env(home: Path) -> dict[str, str]:
    """A login's environment on stock Debian: system paths only, no virtualenv, no chat settings."""
    env = {"PATH": DEBIAN_PATH, "HOME": str(home), "LANG": "C.UTF-8"}
    cache = Path.home() / ".cache" / "pip"  # only saves downloads between runs; pip works the same without it
    env["PIP_CACHE_DIR"] = str(cache)
    # How this machine reaches PyPI (a mirror, a proxy, a company CA) is the network's, not the newcomer's.
    network = ("http_proxy", "https_proxy", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")
    for name, value in os.environ.items():
        if name.lower() in network or name in network or name.startswith("PIP_"):
            env.setdefault(name, value)
    return env


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


def test_this_machine_reproduces_stock_debian(checkout: Path, home: Path) -> None:
    """The premises: Debian's python3 refuses a system-wide pip install, and there is no ``python``."""
    assert SYSTEM_PYTHON.exists(), "Debian's python3 (apt-get install python3) is what this test runs"
    assert shutil.which("python", path=DEBIAN_PATH) is None
    refused = subprocess.run(
        [str(SYSTEM_PYTHON), "-m", "pip", "install", "-e", "."],
        cwd=checkout,
        env=debian_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr, (
        "this test reproduces Debian 12, whose /usr/bin/python3 refuses system-wide installs (PEP 668)"
    )


@pytest.fixture(scope="module")
def installed_and_serving(checkout: Path, home: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """The quick start's first command as written (on a free port instead of 8080), until it serves."""
    first, second = quick_start_commands()
    assert (first, second) == ("scripts/setup && .venv/bin/chatserver", "scripts/test")
    port = free_port()
    log_path = checkout.parent / "quick-start.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", "-c", f"{first} --port {port}"],
            cwd=checkout,
            env=debian_env(home),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + INSTALL_TIMEOUT
        while not _healthy(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the quick start did not serve:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.5)
        yield process, port, log_path
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_first_quick_start_command_installs_into_a_venv_and_serves(
    installed_and_serving: tuple[subprocess.Popen[bytes], int, Path], checkout: Path
) -> None:
    process, port, log_path = installed_and_serving
    assert (checkout / ".venv" / "bin" / "chatserver").exists()
    assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200

    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in the terminal reaches the whole foreground group
    process.wait(timeout=STOP_TIMEOUT)
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log, log
    assert "scripts/setup: creating the virtualenv" in log and "scripts/setup: installing . into" in log


def test_try_it_as_written_connects_sends_and_reads_history(
    installed_and_serving: tuple[subprocess.Popen[bytes], int, Path], checkout: Path, home: Path
) -> None:
    """The "Try it" block, on a port of its own (its server runs beside the quick start's)."""
    block = sh_blocks(section("Try it: mint a token, connect, send, see the broadcast"))[0]
    port = free_port()
    assert block.count("chatserver & SERVER=$!") == 1
    script = block.replace("chatserver & SERVER=$!", f"chatserver --port {port} & SERVER=$!").replace(
        "127.0.0.1:8080", f"127.0.0.1:{port}"
    )
    process = subprocess.Popen(
        ["bash", "-e", "-c", script],
        cwd=checkout,
        env=debian_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so a failed step cannot leave its background server running
    )
    try:
        stdout, stderr = process.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)

    assert process.returncode == 0, stderr
    ready, broadcast, history = stdout.splitlines()
    assert ready == '{"event":"ready","data":true}'
    assert '"content":"Hello clan!"' in broadcast and '"event":"newMessage"' in broadcast
    assert '"content":"Hello clan!"' in history and history.startswith('{"data":{"ChatMessage":[')
