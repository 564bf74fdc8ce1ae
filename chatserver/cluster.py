"""``chatserver cluster``: Redis, N replicas and an nginx load balancer on one machine, for developers and tests.

``Cluster`` starts ``redis-server`` (or uses a given ``REDIS_URL``), N ``python -m chatserver``
replicas on free ports with ``REDIS_URL`` set, and Debian's nginx rendered from
``deploy/nginx.conf.template`` (the file docker-compose uses too) with round-robin over the replicas
and WebSocket upgrade. Every config, pid, temporary file and log lives in one work directory, so
nothing needs root. Stopping is ordered: nginx stops accepting, the replicas drain (SIGTERM, then
SIGKILL after a timeout), nginx finishes, Redis goes last.

History: without ``MONGODB_URL`` every replica keeps its own in-process history, so
``/chat/history`` depends on which replica answers; with ``MONGODB_URL`` in the environment the
replicas share it. Live messages reach every replica either way, through Redis.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType

import redis

SOURCE_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = SOURCE_ROOT / "deploy" / "nginx.conf.template"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
UPSTREAM_POLICY = "max_fails=1 fail_timeout=10s"
LOCALHOST = "127.0.0.1"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # our ports are never behind a proxy


class ClusterError(RuntimeError):
    """A component could not be found, started or reached; the message says which and shows its log."""


def free_port(host: str = LOCALHOST, avoid: Collection[int] = ()) -> int:
    """A port nothing listens on now; ``avoid`` keeps two components of one cluster off the same port."""
    while True:
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if port not in avoid:
            return port


def wait_until(ready: Callable[[], bool], what: str, *, process: ManagedProcess | None = None, timeout: float) -> None:
    """Poll ``ready``: processes bind their ports a while after they start. A process that exits
    meanwhile will never be ready, so stop waiting then and show the end of its log."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and not process.running:
            raise ClusterError(f"{what} exited with status {process.returncode}{process.log_tail()}")
        if ready():
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"{what} was not ready after {timeout:g}s{process.log_tail() if process else ''}")
        time.sleep(0.05)


def http_ok(url: str) -> bool:
    """True when ``url`` answers 200; no proxy from the environment, which would never reach our ports."""
    try:
        with _DIRECT.open(url, timeout=1) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as error:
        error.close()
        return False
    except (urllib.error.URLError, OSError):
        return False


def redis_answers(url: str) -> bool:
    """True when the Redis at ``url`` answers PING (redis-py, so passwords and TLS URLs work too)."""
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def program(name: str) -> str:
    """The path of ``name``; also looks in the sbin folders, which are not on a normal user's PATH (nginx)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=path)
    if found is None:
        raise ClusterError(f"{name} not found: install it (Debian: apt-get install {name})")
    return found


def host_port(host: str, port: int) -> str:
    """``host:port`` for URLs and nginx's ``listen``, with IPv6 addresses in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _PlaceholderTemplate(string.Template):
    """Only ``${UPPER_CASE}`` is a placeholder: nginx's own ``$host`` and ``$http_upgrade`` stay as they are."""

    flags = re.RegexFlag(0)  # case-sensitive: ${PREFIX} is ours, ${host} would be nginx's
    pattern = r"""\$(?:
        \{(?P<braced>[A-Z][A-Z0-9_]*)\}
        | (?P<escaped>(?!)) | (?P<named>(?!)) | (?P<invalid>(?!))
    )"""  # type: ignore[assignment]  # a str here; string.Template compiles it when subclassed


def render_nginx_conf(
    upstreams: Sequence[str], *, listen: str, prefix: Path, error_log: str, access_log: str, template: Path = TEMPLATE
) -> str:
    """The template with every placeholder filled; a missing one raises instead of reaching nginx."""
    if not template.is_file():
        raise ClusterError(f"nginx template not found at {template}: the cluster runs from a source checkout")
    servers = "\n        ".join(f"server {address} {UPSTREAM_POLICY};" for address in upstreams)
    values = {"LISTEN": listen, "UPSTREAMS": servers, "PREFIX": str(prefix), "ERROR_LOG": error_log}
    values["ACCESS_LOG"] = access_log
    return _PlaceholderTemplate(template.read_text()).substitute(values)


@dataclass
class ManagedProcess:
    """One child of the cluster: how to start it, when it is ready, and which signals ask it to stop.

    Children run in their own session, so a Ctrl-C in the terminal reaches only ``chatserver
    cluster``, which then stops them in order. Logs are appended, so a restart keeps the history.
    """

    name: str
    argv: list[str]
    log_path: Path
    ready: Callable[[], bool]
    stop_signals: tuple[signal.Signals, ...] = (signal.SIGTERM,)
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.running and self.popen is not None else None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def spawn(self) -> None:
        if self.running:
            raise ClusterError(f"{self.name} is already running")
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                env=None if self.env is None else dict(self.env),
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        wait_until(self.ready, self.name, process=self, timeout=timeout)

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def ask_to_stop(self) -> None:
        """Send the first stop signal without waiting, so several children can stop at once."""
        if self.popen is not None:
            self.popen.send_signal(self.stop_signals[0])

    def finish(self, timeout: float = STOP_TIMEOUT) -> None:
        """Wait for the exit; after each ``timeout`` send the next stop signal, and SIGKILL last."""
        if self.popen is None:
            return
        for next_signal in (*self.stop_signals[1:], signal.SIGKILL):
            try:
                self.popen.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                self.popen.send_signal(next_signal)
        self.popen.wait()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        self.ask_to_stop()
        self.finish(timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no drain, no goodbye to clients."""
        if self.popen is not None:
            self.popen.kill()
            self.popen.wait()

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n" + "\n".join(text.splitlines()[-lines:]) if text else ""


@dataclass
class Replica:
    """One ``chatserver`` process behind nginx; ``index`` is its place in ``Cluster.replicas``."""

    index: int
    port: int
    process: ManagedProcess
    host: str = LOCALHOST

    @property
    def url(self) -> str:
        return f"http://{host_port(self.host, self.port)}"

    @property
    def ws_url(self) -> str:
        return f"ws://{host_port(self.host, self.port)}/ws/chat"

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.process.log_path


class Cluster:
    """Redis, N chat servers and nginx on free ports, started by ``start()`` or ``with Cluster(...)``.

    ``env`` adds to this process's environment for the replicas (``JWT_SECRET``, ``MONGODB_URL``,
    limits); ``REDIS_URL`` is always the cluster's: ``redis_url`` when given, else a ``redis-server``
    the cluster starts. Without ``MONGODB_URL`` each replica keeps its own in-process history (not
    shared, not durable); with it the replicas share it. ``port`` is nginx's public port (a free one
    when None). ``workdir`` (a new temporary directory when None) holds config and logs and is kept
    after ``stop()`` so the logs can be read.
    """

    def __init__(
        self,
        replicas: int = 3,
        *,
        host: str = LOCALHOST,
        port: int | None = None,
        redis_url: str | None = None,
        workdir: Path | str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if replicas < 1:
            raise ClusterError("a cluster needs at least one replica")
        self.host = host
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="chatserver-cluster-")).resolve()
        self.nginx_conf = self.workdir / "nginx.conf"
        self.port = port or free_port(host)
        taken = {self.port}
        self.redis: ManagedProcess | None = None
        self.redis_port: int | None = None
        if redis_url is None:
            self.redis_port = free_port(LOCALHOST, taken)
            taken.add(self.redis_port)
            redis_url = f"redis://{LOCALHOST}:{self.redis_port}/0"
            self.redis = self._redis_process(self.redis_port, redis_url)
        self.redis_url = redis_url
        self.replica_env = {**os.environ, **(env or {}), "REDIS_URL": redis_url}
        self.replicas: list[Replica] = []
        for index in range(replicas):
            replica_port = free_port(LOCALHOST, taken)
            taken.add(replica_port)
            self.replicas.append(Replica(index, replica_port, self._replica_process(index, replica_port)))
        self.nginx = self._nginx_process()

    @property
    def public_url(self) -> str:
        return f"http://{host_port(self.host, self.port)}"

    @property
    def ws_url(self) -> str:
        return f"ws://{host_port(self.host, self.port)}/ws/chat"

    @property
    def history_shared(self) -> bool:
        """True with ``MONGODB_URL``; otherwise each replica answers ``/chat/history`` from its own memory."""
        return bool(self.replica_env.get("MONGODB_URL", "").strip())

    @property
    def ports(self) -> list[int]:
        """Every port the cluster listens on: nginx, its own Redis, the replicas."""
        own_redis = [] if self.redis_port is None else [self.redis_port]
        return [self.port, *own_redis, *(replica.port for replica in self.replicas)]

    def pids(self) -> list[int]:
        """The processes running now that the cluster started (nginx's master stands for its workers)."""
        processes = [self.nginx, *(replica.process for replica in self.replicas), *([self.redis] if self.redis else [])]
        return [process.pid for process in processes if process.pid is not None]

    def start(self) -> Cluster:
        """Redis, then the replicas (started together, each waited for), then nginx; all or nothing."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            if self.redis is not None:
                self.redis.start()
            else:
                wait_until(partial(redis_answers, self.redis_url), f"Redis at {self.redis_url}", timeout=READY_TIMEOUT)
            for replica in self.replicas:
                replica.process.spawn()
            for replica in self.replicas:
                replica.process.wait_ready()
            self.nginx_conf.write_text(self.render_nginx_conf())
            self.nginx.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """nginx stops accepting, the replicas drain together, nginx finishes, Redis goes last. Idempotent."""
        self.nginx.ask_to_stop()
        for replica in self.replicas:
            replica.process.ask_to_stop()
        for replica in self.replicas:
            replica.process.finish()
        self.nginx.finish()
        if self.redis is not None:
            self.redis.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def stop_replica(self, index: int) -> None:
        """SIGTERM, as an orchestrator stops a replica (SIGKILL after the stop timeout)."""
        self.replicas[index].process.stop()

    def kill_replica(self, index: int) -> None:
        """SIGKILL, as a crash would: no drain, clients see their sockets drop."""
        self.replicas[index].process.kill()

    def start_replica(self, index: int) -> None:
        """Start a stopped replica again on the same port, so nginx's upstream list still holds."""
        self.replicas[index].process.start()

    def stop_redis(self) -> None:
        """Stop the cluster's own Redis, for outage tests; the port stays reserved for ``start_redis``."""
        self._own_redis().stop()

    def start_redis(self) -> None:
        self._own_redis().start()

    def render_nginx_conf(self) -> str:
        return render_nginx_conf(
            [host_port(replica.host, replica.port) for replica in self.replicas],
            listen=host_port(self.host, self.port),
            prefix=self.workdir,
            error_log="stderr",  # into nginx-error.log through the process's stderr, each line once
            access_log=str(self.workdir / "nginx-access.log"),
        )

    def describe(self) -> list[str]:
        """One line per component with its address, pid and log, as ``chatserver cluster`` prints them."""
        lines = [
            f"nginx      {self.public_url}  {self.ws_url}  pid {self.nginx.pid}  log {self.nginx.log_path} "
            f"(access log {self.workdir / 'nginx-access.log'}, config {self.nginx_conf})"
        ]
        for replica in self.replicas:
            lines.append(f"replica {replica.index}  {replica.url}  pid {replica.pid}  log {replica.log_path}")
        if self.redis is not None:
            lines.append(f"redis      {self.redis_url}  pid {self.redis.pid}  log {self.redis.log_path}")
        else:
            lines.append(f"redis      {self.redis_url}  (not started by the cluster)")
        if self.history_shared:
            lines.append("history    shared by all replicas in MongoDB (MONGODB_URL is set)")
        else:
            lines.append(
                "history    MONGODB_URL is not set: each replica keeps its own in-process history "
                "(not shared between replicas, not durable); live messages still reach every replica through Redis"
            )
        return lines

    def _own_redis(self) -> ManagedProcess:
        if self.redis is None:
            raise ClusterError(f"Redis at {self.redis_url} was not started by this cluster")
        return self.redis

    def _redis_process(self, port: int, url: str) -> ManagedProcess:
        argv = [program("redis-server"), "--port", str(port), "--bind", LOCALHOST]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        return ManagedProcess("redis", argv, self.workdir / "redis.log", partial(redis_answers, url))

    def _replica_process(self, index: int, port: int) -> ManagedProcess:
        argv = [sys.executable, "-m", "chatserver", "--host", LOCALHOST, "--port", str(port)]
        health = f"http://{host_port(LOCALHOST, port)}/healthz"
        log_path = self.workdir / f"replica-{index}.log"
        # Run from the source root so ``-m chatserver`` is this very package, whatever else is installed.
        ready = partial(http_ok, health)
        return ManagedProcess(f"replica {index}", argv, log_path, ready, env=self.replica_env, cwd=SOURCE_ROOT)

    def _nginx_process(self) -> ManagedProcess:
        error_log = self.workdir / "nginx-error.log"
        argv = [program("nginx"), "-p", f"{self.workdir}/", "-e", "stderr", "-c", str(self.nginx_conf)]
        argv += ["-g", "daemon off;"]
        health = f"{self.public_url}/healthz"
        # SIGQUIT is nginx's graceful stop (`nginx -s quit`); SIGTERM is its fast stop.
        signals = (signal.SIGQUIT, signal.SIGTERM)
        return ManagedProcess("nginx", argv, error_log, partial(http_ok, health), stop_signals=signals)


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``chatserver cluster``."""
    parser.add_argument("--replicas", type=int, default=3, help="number of chat server processes (default 3)")
    parser.add_argument("--port", type=int, default=8080, help="nginx's public port (default 8080)")
    parser.add_argument("--host", default=LOCALHOST, help=f"address nginx listens on (default {LOCALHOST})")
    parser.add_argument("--redis-url", help="use this Redis instead of starting redis-server")
    parser.add_argument("--workdir", type=Path, help="directory for config and logs (default: a new temporary one)")


def run_cluster(args: argparse.Namespace) -> None:
    """Start the cluster, print where everything is, wait for SIGINT or SIGTERM, then stop it all."""
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        cluster = Cluster(args.replicas, host=args.host, port=args.port, redis_url=args.redis_url, workdir=args.workdir)
        with cluster:
            replicas = f"{len(cluster.replicas)} replica{'s' if len(cluster.replicas) > 1 else ''}"
            print(f"chatserver cluster: {replicas} behind nginx, workdir {cluster.workdir}")
            for line in cluster.describe():
                print(f"  {line}")
            print("Press Ctrl-C (or send SIGTERM) to stop.", flush=True)
            while not stopping.wait(timeout=1.0):
                continue
            print("chatserver cluster: stopping", flush=True)
        print("chatserver cluster: stopped", flush=True)
    except ClusterError as error:
        sys.exit(f"chatserver cluster: {error}")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
