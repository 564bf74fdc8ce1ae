"""Every process a benchmark starts: servers under test and load generators, pinned, watched, always stopped.

Servers go on core 0 and load generators on core 1 (``taskset``), so the two never steal each
other's CPU on a 2-core machine. Each is a ``tools.processes.ManagedProcess``: in its own session (a
Ctrl-C in the terminal reaches only the benchmark, which then stops them in its ``finally``) and sent
SIGTERM if the benchmark itself dies (``PR_SET_PDEATHSIG``), so no run leaves a server behind.
"""

from __future__ import annotations

import json
import os
import queue
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

from tools.processes import ManagedProcess, http_ok
from tools.processes import clean_env as without_chat_settings
from tools.processes import free_port as free_port  # scenarios pick ports for their baselines with it

SERVER_CPU = 0
LOAD_CPU = 1
HOST = "127.0.0.1"
SECRET = "bench-secret-for-the-chat-server-benchmarks-0123456789-abcdefghijklmnopqrstuvwxyz"
ROOT = Path(__file__).resolve().parent.parent
# The chat server's source tree: this checkout, or a snapshot of it (``git archive HEAD chatserver | tar -x
# -C DIR``) so a benchmark measures one consistent version while the working tree is being edited.
SOURCE = Path(os.environ.get("BENCH_CHATSERVER_SOURCE") or ROOT).resolve()
# A benchmark floods from a few player ids and opens thousands of sockets per id: the per-player
# rate limits and the sockets-per-player cap (README's Configuration table) would refuse that load.
LIMITS_OFF = {
    **{f"CHAT_{kind}_{part}": "1000000" for kind in ("MESSAGE", "REACTION", "HISTORY") for part in ("RATE", "BURST")},
    "CHAT_MAX_SOCKETS_PER_PLAYER": "1000000",
}


def raise_open_files_limit() -> int:
    """Soft ``RLIMIT_NOFILE`` up to the hard limit (children inherit it); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def taskset(cpu: int | None) -> list[str]:
    """The ``taskset -c CPU`` prefix, or nothing when pinning is impossible (one core, no util-linux)."""
    if cpu is None or shutil.which("taskset") is None or cpu not in os.sched_getaffinity(0):
        return []
    return ["taskset", "-c", str(cpu)]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without any chat setting, plus the bench secret, the limits off and ``extra``."""
    return without_chat_settings(JWT_SECRET=SECRET, **LIMITS_OFF, **(extra or {}))


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` from ``/proc/<pid>/status`` (``VmRSS``, in kB there)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server(ManagedProcess):
    """A server under test: always on a port, and with a pid for the CPU and memory samplers while it runs."""

    port: int = 0

    @property
    def pid(self) -> int:
        if self.popen is None or not self.running:
            raise RuntimeError(f"{self.name} is not running{self._last_line()}")
        return self.popen.pid


def server(
    name: str,
    argv: Sequence[str],
    port: int,
    workdir: Path,
    *,
    env: Mapping[str, str] | None = None,
    health: str | None = None,
    cpu: int | None = SERVER_CPU,
    cwd: Path = ROOT,
) -> Server:
    """A server under test on ``port``, pinned to ``cpu``, its output in a log file of the run's work directory.

    It is ready when it listens on ``port`` and, with ``health``, that path answers 200.
    """
    ready = partial(http_ok, f"http://{HOST}:{port}{health}") if health is not None else (lambda: True)
    log_path = workdir / f"{name}-{port}.log"
    return Server(name, [*taskset(cpu), *argv], log_path, ready, port=port, env=env, cwd=cwd, die_with_parent=True)


def chat_server(
    workdir: Path, env: Mapping[str, str] | None = None, cpu: int | None = SERVER_CPU, profile: Path | None = None
) -> Server:
    """``chatserver --port P``, embedded unless ``env`` says otherwise, the bench secret set, limits off.

    Log level ``warning``: the per-connection ``info`` lines would cost the connection benchmark a
    JSON log write per socket. With ``profile`` the server runs under pyinstrument (see
    ``bench/profiled_server.py``), which writes its session to that path when the server stops.
    """
    port = free_port()
    program = ["-m", "chatserver"] if profile is None else ["-m", "bench.profiled_server", str(profile)]
    argv = [sys.executable, *program, "--host", HOST, "--port", str(port), "--log-level", "warning"]
    # Run from SOURCE, first on ``sys.path`` for ``-m``; ROOT after it for ``bench.profiled_server``.
    server_env = clean_env({"PYTHONPATH": str(ROOT), **(env or {})})
    return server("chatserver", argv, port, workdir, env=server_env, health="/healthz", cpu=cpu, cwd=SOURCE)


def peer_server(workdir: Path, redis_url: str | None = None) -> Server:
    """The python-socketio peer (``bench/socketio_peer.py``), sharing rooms through ``redis_url`` when given."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.socketio_peer", "--host", HOST, "--port", str(port)]
    if redis_url is not None:
        argv += ["--redis-url", redis_url]
    return server("peer", argv, port, workdir, env=clean_env())


def redis_server(workdir: Path) -> Server:
    """A throw-away ``redis-server`` on a free port: no persistence, loopback only, on the server core."""
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    return server("redis", [*argv, "--dir", str(workdir)], port, workdir)


class LoadClient:
    """``python -m bench.loadrun`` (or another ``module`` of the same protocol) on the load core, in JSON lines."""

    def __init__(
        self, config: Mapping[str, Any], cpu: int | None = LOAD_CPU, name: str = "load", module: str = "bench.loadrun"
    ) -> None:
        config = {"host": HOST, "secret": SECRET, **config}
        argv = [*taskset(cpu), sys.executable, "-m", module, json.dumps(config)]
        self.name = name
        self.process = ManagedProcess(name, argv, cwd=ROOT, die_with_parent=True, piped=True)
        self._answers: queue.Queue[str] = queue.Queue()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def start(self) -> LoadClient:
        self.process.spawn()
        assert self.process.popen is not None and self.process.popen.stdout is not None
        threading.Thread(target=self._read, args=(self.process.popen.stdout,), daemon=True).start()
        return self

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            self._answers.put(line.decode())
        self._answers.put("")

    def send(self, command: str, **arguments: Any) -> None:
        popen = self.process.popen
        assert popen is not None and popen.stdin is not None
        popen.stdin.write((json.dumps({"cmd": command, **arguments}) + "\n").encode())
        popen.stdin.flush()

    def answer(self, timeout: float = 300.0) -> dict[str, Any]:
        try:
            line = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.name} gave no answer within {timeout:g}s") from None
        if not line:
            raise RuntimeError(f"{self.name} exited (status {self.process.returncode})")
        return dict(json.loads(line))

    def call(self, command: str, wait: float = 300.0, **arguments: Any) -> dict[str, Any]:
        """Run one command; ``wait`` bounds this side's wait, a ``timeout`` argument goes to the command."""
        self.send(command, **arguments)
        return self.answer(max(wait, float(arguments.get("timeout", 0)) + 30))

    def stop(self, timeout: float = 10.0) -> None:
        """Ask it to quit over stdin first (it closes its sockets), then stop it as any child."""
        if self.process.running and self.process.popen is not None:
            try:
                self.send("quit")
                self.process.popen.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.process.stop(timeout)


def workdir(prefix: str) -> Path:
    """A fresh directory for one run's logs and raw profiles (kept, so a failed run can be read)."""
    return Path(tempfile.mkdtemp(prefix=f"chat-bench-{prefix}-"))
