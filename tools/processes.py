"""Child processes for the tests, the benchmarks and the local cluster: started, checked to serve, always stopped.

One supervisor for every process we start (chat servers, Redis, nginx, the MongoDB stand-in, load
generators), and one ``free_port``. A child counts as ready only when its own check passes *and*,
when it has a port, that very process listens on it: an answer from whatever else holds the port
(another server left running, say) is never taken for this child's.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

LOCALHOST = "127.0.0.1"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_PR_SET_PDEATHSIG = 1
_TCP_LISTEN = "0A"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # our ports are never behind a proxy


class ProcessError(RuntimeError):
    """A child could not be found, started or reached; ``summary`` is the one line a command prints."""

    def __init__(self, summary: str, details: str = "") -> None:
        super().__init__(f"{summary}\n{details}" if details else summary)
        self.summary = summary


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any chat server setting (no ``JWT_SECRET`` either), plus ``extra``.

    So a child runs with exactly the settings its parent means, whatever the developer's shell exports.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CHAT_", "REDIS_", "MONGODB_", "JWT_"))}
    return {**base, **extra}


def free_port(host: str = LOCALHOST, avoid: Collection[int] = ()) -> int:
    """A port nothing listens on now; ``avoid`` keeps two children of one run off the same port."""
    while True:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if port not in avoid:
            return port


class PortUnavailable(ProcessError):
    """Nothing of ours can listen on this address; ``in_use`` when another process already does."""

    def __init__(self, summary: str, *, in_use: bool) -> None:
        super().__init__(summary)
        self.in_use = in_use


def check_can_listen(host: str, port: int) -> None:
    """Raise ``PortUnavailable`` unless a server could listen on ``host:port`` now (bound as servers bind)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed socket in TIME_WAIT does not count
        try:
            probe.bind((host, port))
        except OSError as error:
            reason = (error.strerror or str(error)).lower()
            in_use = error.errno == errno.EADDRINUSE
            raise PortUnavailable(f"cannot listen on {host_port(host, port)}: {reason}", in_use=in_use) from None


def host_port(host: str, port: int) -> str:
    """``host:port`` for URLs and nginx's ``listen``, with IPv6 addresses in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def http_ok(url: str) -> bool:
    """True when ``url`` answers 200; no proxy from the environment, which would never reach our ports."""
    try:
        with _DIRECT.open(url, timeout=1) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as error:
        error.close()
        return False
    except OSError:
        return False


def program(name: str) -> str:
    """The path of ``name``; also looks in the sbin folders, which are not on a normal user's PATH (nginx)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=path)
    if found is None:
        raise ProcessError(f"{name} not found: install it (Debian: apt-get install {name})")
    return found


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a listening TCP socket on ``port`` (Linux ``/proc``)."""
    sockets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not sockets:
        return False
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # the process is gone
        return False
    for descriptor in descriptors:
        try:
            if os.readlink(descriptor) in sockets:
                return True
        except OSError:  # closed while we looked
            continue
    return False


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == _TCP_LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _die_with_parent() -> None:
    """In the child before ``exec``: SIGTERM when the parent dies, so a killed benchmark leaves no server."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ManagedProcess:
    """One child: how to start it, when it is ready, which signals ask it to stop.

    Children run in their own session, so a Ctrl-C in the terminal reaches only the parent, which
    then stops them in order. Output is appended to ``log_path`` (a restart keeps the history);
    with ``piped`` the parent talks to the child over its stdin and stdout instead.
    """

    name: str
    argv: list[str]
    log_path: Path | None = None
    ready: Callable[[], bool] = lambda: True
    port: int | None = None
    stop_signals: tuple[signal.Signals, ...] = (signal.SIGTERM,)
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    die_with_parent: bool = False
    piped: bool = False
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.returncode is None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.running and self.popen is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit status once it has ended (``-N`` for signal N), read without reaping it: until
        ``finish`` reaps it, its process id, and so its process group, cannot belong to anyone else."""
        if self.popen is None or self.popen.returncode is not None:
            return None if self.popen is None else self.popen.returncode
        try:
            ended = os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped through ``popen`` directly
            return self.popen.poll()
        if ended is None:
            return None
        return -ended.si_status if ended.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else ended.si_status

    def spawn(self) -> None:
        if self.running:
            raise ProcessError(f"{self.name} is already running")
        if self.popen is not None and self.popen.returncode is None:
            self._reap()  # an earlier run that ended on its own
        stdin = subprocess.PIPE if self.piped else subprocess.DEVNULL
        with self.log_path.open("ab") if self.log_path else open(os.devnull, "wb") as log:
            self.popen = subprocess.Popen(
                self.argv,
                env=None if self.env is None else dict(self.env),
                cwd=self.cwd,
                stdin=stdin,
                stdout=subprocess.PIPE if self.piped else log,
                stderr=None if self.piped and self.log_path is None else log,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )

    def serves(self) -> bool:
        """Its readiness check passes, and (with a port) this process is the one listening there."""
        if self.popen is None or not self.running:
            return False
        if self.port is not None and not listens_on(self.popen.pid, self.port):
            return False
        return self.ready()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll until it serves: processes bind their ports a while after they start. One that exits
        meanwhile never will, so stop waiting then and say why."""
        deadline = time.monotonic() + timeout
        while not self.serves():
            if not self.running:
                raise ProcessError(self.exit_summary(), self.log_tail())
            if time.monotonic() > deadline:
                where = f" on port {self.port}" if self.port is not None else ""
                summary = f"{self.name} was not serving{where} after {timeout:g}s{self._last_line()}"
                raise ProcessError(summary, self.log_tail())
            time.sleep(0.05)

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        """Spawn and wait until it serves; a child that does not is stopped before the error is raised."""
        self.spawn()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def ask_to_stop(self) -> None:
        """Send the first stop signal without waiting, so several children can stop at once."""
        self._signal(self.stop_signals[0])

    def finish(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Wait for the exit; after each ``timeout`` send the next stop signal, SIGKILL last. The exit code.

        Whatever it started and left behind in its process group (nginx workers of a killed master)
        is killed before it is reaped.
        """
        if self.popen is None:
            return None
        for next_signal in (*self.stop_signals[1:], signal.SIGKILL):
            if self._ended_within(timeout):
                break
            self._signal(next_signal)
        return self._reap()

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Ask, then wait (escalating); safe to call twice and after a crash. The exit code."""
        self.ask_to_stop()
        return self.finish(timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no drain, no goodbye to clients."""
        self._signal(signal.SIGKILL)
        if self.popen is not None:
            self._reap()

    def _reap(self) -> int:
        """Wait for the end, kill what it left in its process group, then collect its exit status."""
        assert self.popen is not None
        self._ended_within(None)
        if self.popen.returncode is None:  # not reaped yet, so the group is still this child's
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except OSError:  # nothing left in it to kill
                pass
        return self.popen.wait()

    def _signal(self, signum: signal.Signals) -> None:
        """``os.kill`` rather than ``Popen.send_signal``, which would reap an ended child."""
        if self.running and self.popen is not None:
            os.kill(self.popen.pid, signum)

    def _ended_within(self, timeout: float | None) -> bool:
        """Whether it ends within ``timeout`` seconds (``None``: however long it takes), without reaping it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def exit_summary(self) -> str:
        """One line on how it ended: the exit status, the last thing it wrote and where its log is."""
        return f"{self.name} exited with status {self.returncode}{self._last_line()}"

    def _last_line(self) -> str:
        """The last thing the child wrote and where its log is, for a one-line error."""
        last = next((line.strip() for line in reversed(self.log().splitlines()) if line.strip()), "")
        said = f": {last}" if last else ""
        return f"{said} (log {self.log_path})" if self.log_path else said
