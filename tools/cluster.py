"""A local cluster: Redis, N chat server replicas and an nginx load balancer on one machine.

Run it from a source checkout as ``scripts/cluster`` (or ``python3 -m tools.cluster``); tests use
``Cluster`` directly. The replicas are ``python -m chatserver`` of this checkout, nginx is Debian's,
configured from ``deploy/nginx.conf.template`` (the file docker-compose uses too). Every config, pid
and log lives in one work directory, so nothing needs root. Stopping is ordered: nginx stops
accepting, the replicas drain (SIGTERM, then SIGKILL after a timeout), nginx finishes, Redis goes last.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import string
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType

import redis

from tools.processes import (
    LOCALHOST,
    ManagedProcess,
    PortUnavailable,
    ProcessError,
    check_can_listen,
    free_port,
    host_port,
    http_ok,
    program,
)
from tools.redis_cluster import LocalRedisCluster

SOURCE_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = SOURCE_ROOT / "deploy" / "nginx.conf.template"
UPSTREAM_POLICY = "max_fails=1 fail_timeout=10s"


class ClusterError(ProcessError):
    """The cluster cannot be built or started; ``summary`` says which part and why, in one line."""


def redis_answers(url: str) -> bool:
    """True when the Redis at ``url`` answers PING (redis-py, so passwords and TLS URLs work too)."""
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


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
    servers = "\n        ".join(f"server {address} {UPSTREAM_POLICY};" for address in upstreams)
    values = {"LISTEN": listen, "UPSTREAMS": servers, "PREFIX": str(prefix), "ERROR_LOG": error_log}
    values["ACCESS_LOG"] = access_log
    return _PlaceholderTemplate(template.read_text()).substitute(values)


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
        assert self.process.log_path is not None
        return self.process.log_path


class Cluster:
    """Redis, N chat servers and nginx, started by ``start()`` or ``with Cluster(...)``.

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
        if not TEMPLATE.is_file():
            raise ClusterError(f"nginx template not found at {TEMPLATE}")
        if redis_url is not None:
            try:
                redis.Redis.from_url(redis_url)  # parses only; connecting waits for start()
            except ValueError as error:
                raise ClusterError(f"Redis URL {redis_url!r}: {error}") from None
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
        # A local cluster is development by its nature: without JWT_SECRET it runs on the public one.
        self.replica_env = {"CHAT_ENV": "development", **os.environ, **(env or {}), "REDIS_URL": redis_url}
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
        """Redis, then the replicas (started together, each waited for), then nginx; all or nothing.

        Every port is checked first, so a port in use is one clear error before anything starts; each
        child then counts as started only when it is the process listening on its port.
        """
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = (error.strerror or str(error)).lower()
            raise ClusterError(f"cannot use {self.workdir} as the workdir: {reason}") from None
        try:
            check_can_listen(self.host, self.port)
        except PortUnavailable as error:
            hint = ": is another server running there? Pick another port" if error.in_use else ""
            raise ClusterError(f"nginx {error.summary}{hint}") from None
        for port in self.ports[1:]:
            check_can_listen(LOCALHOST, port)
        try:
            if self.redis is not None:
                self.redis.start()
            elif not _wait_for(partial(redis_answers, self.redis_url)):
                raise ClusterError(f"Redis at {self.redis_url} does not answer")
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

    def check_serving(self) -> None:
        """Raise ``ClusterError`` once nginx or the cluster's own Redis has exited: nothing can be served then."""
        for process in (self.nginx, *([self.redis] if self.redis else [])):
            if not process.running:
                raise ClusterError(process.exit_summary())

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
        """One line per component with its address, pid and log, as ``scripts/cluster`` prints them."""
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
        return ManagedProcess("redis", argv, self.workdir / "redis.log", partial(redis_answers, url), port=port)

    def _replica_process(self, index: int, port: int) -> ManagedProcess:
        argv = [sys.executable, "-m", "chatserver", "--host", LOCALHOST, "--port", str(port)]
        ready = partial(http_ok, f"http://{host_port(LOCALHOST, port)}/healthz")
        log_path = self.workdir / f"replica-{index}.log"
        # Run from the source root so ``-m chatserver`` is this very package, whatever else is installed.
        return ManagedProcess(
            f"replica {index}", argv, log_path, ready, port=port, env=self.replica_env, cwd=SOURCE_ROOT
        )

    def _nginx_process(self) -> ManagedProcess:
        error_log = self.workdir / "nginx-error.log"
        argv = [program("nginx"), "-p", f"{self.workdir}/", "-e", "stderr", "-c", str(self.nginx_conf)]
        argv += ["-g", "daemon off;"]
        ready = partial(http_ok, f"{self.public_url}/healthz")
        # SIGQUIT is nginx's graceful stop (`nginx -s quit`); SIGTERM is its fast stop.
        signals = (signal.SIGQUIT, signal.SIGTERM)
        return ManagedProcess("nginx", argv, error_log, ready, port=self.port, stop_signals=signals)


def _wait_for(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``check`` until it passes or ``timeout`` seconds have gone."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def port_number(text: str) -> int:
    """An argparse type: a TCP port a server can listen on."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def at_least(minimum: int, too_few: str) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``; ``too_few`` is the error below it."""

    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(too_few.format(value=value))
        return value

    return count


replica_count = at_least(1, "a cluster needs at least one replica")
master_count = at_least(3, "a Redis Cluster needs at least 3 masters, not {value}")
replicas_per_master = at_least(0, "replicas per master cannot be negative, not {value}")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/cluster",
        description="Run redis-server, N chat server replicas of this checkout and nginx in front of them; "
        "Ctrl-C (or SIGTERM) stops them all. Settings such as JWT_SECRET and MONGODB_URL are passed on "
        "from the environment.",
    )
    parser.add_argument("--replicas", type=replica_count, default=3, help="chat server processes (default 3)")
    parser.add_argument("--port", type=port_number, default=8080, help="nginx's public port (default 8080)")
    parser.add_argument("--host", default=LOCALHOST, help=f"address nginx listens on (default {LOCALHOST})")
    parser.add_argument("--redis-url", help="use this Redis instead of starting redis-server")
    parser.add_argument(
        "--redis-cluster",
        type=master_count,
        metavar="MASTERS",
        help="start a local Redis Cluster of this many masters (at least 3) instead of one redis-server",
    )
    parser.add_argument(
        "--redis-cluster-replicas",
        type=replicas_per_master,
        default=0,
        metavar="N",
        help="with --redis-cluster: replicas per master (default 0)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="directory for config and logs, kept (default: a temporary one, removed after a clean stop)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Start the cluster, print where everything is, wait for SIGINT or SIGTERM, then stop it all.

    While it runs, a replica that exits is reported (nginx routes around it); nginx or its own Redis
    exiting stops the whole cluster with exit status 1.

    Without ``--workdir`` the files go to a new temporary directory, removed after a clean stop and
    kept when the cluster failed (the error line names the log to read).
    """
    args = parser().parse_args(argv)
    if args.redis_cluster and args.redis_url:
        sys.exit("cluster: --redis-cluster starts its own Redis; it cannot be combined with --redis-url")
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix="chatserver-cluster-"))
    try:
        with contextlib.ExitStack() as started:
            redis_url = args.redis_url
            if args.redis_cluster:
                shards = LocalRedisCluster(
                    args.redis_cluster, replicas=args.redis_cluster_replicas, workdir=workdir / "redis-cluster"
                )
                redis_url = started.enter_context(shards).url
                print(f"cluster: a Redis Cluster of {args.redis_cluster} masters at {redis_url}", flush=True)
            cluster = Cluster(args.replicas, host=args.host, port=args.port, redis_url=redis_url, workdir=workdir)
            started.enter_context(cluster)
            replicas = f"{len(cluster.replicas)} replica{'s' if len(cluster.replicas) > 1 else ''}"
            print(f"cluster: {replicas} behind nginx, workdir {cluster.workdir}")
            for line in cluster.describe():
                print(f"  {line}")
            print("Press Ctrl-C (or send SIGTERM) to stop.", flush=True)
            reported: set[int] = set()
            while not stopping.wait(timeout=1.0):
                cluster.check_serving()
                for replica in cluster.replicas:
                    if not replica.process.running and replica.index not in reported:
                        reported.add(replica.index)
                        note = f"{replica.process.exit_summary()}; nginx sends its requests to the other replicas"
                        print(f"cluster: {note}", file=sys.stderr, flush=True)
            print("cluster: stopping", flush=True)
    except ProcessError as error:
        if args.workdir is None and not any(workdir.iterdir()):
            workdir.rmdir()  # nothing was started: no log worth keeping
        sys.exit(f"cluster: {error.summary}")
    if args.workdir is None:
        shutil.rmtree(workdir)
    print("cluster: stopped", flush=True)


if __name__ == "__main__":
    main()
