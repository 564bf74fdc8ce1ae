"""``storm``: SIGKILL one of three replicas under a steady stream; every socket it held resumes elsewhere.

Redis, the MongoDB wire stand-in (``tests/support/mongo_standin.py``, its own process: the shared store every
resume reads) and three ``chatserver`` replicas with ``REDIS_URL`` and ``MONGODB_URL``, all on core 0.
The load process (``bench/stormclient.py``, core 1) opens ``--sockets`` sockets, socket ``i`` on
replica ``i % 3`` in clan ``i // 30`` (so clans span replicas), each player with its own token, and
every one follows the reference client's rules: full-jitter back-off, resume with ``since``, skip
versions it holds. An open-loop stream (``--rate`` messages/s, one in ``--global-every`` to the
global room, each carrying its send time and a sequence number) goes out from sockets on the two
replicas that survive. After ``--warmup`` seconds the load process is told the first replica is gone
(a load balancer's health check) and the replica is SIGKILLed.

Reported: the time from the kill until every client is ``ready`` again; the p99 send-to-receive
latency that undisturbed clients (on the survivors) see before and during the storm; the (client,
message) pairs never received live or by resume (must be zero) and the versions seen twice. The
servers' CPU share over time and the survivors' resume reads say what bounds the recovery.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench import processes, profiling, report
from bench.processes import LoadClient, Server

CLAN_SIZE = 30
REPLICAS = 3
POLL_SECONDS = 0.5
STORM_TIMEOUT = 240.0  # quick: 60 s
METRICS_TIMEOUT = 30.0
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
STORE_CALLS = re.compile(r'^chat_store_seconds_(count|sum)\{operation="(\w+)"\} (\S+)$', re.MULTILINE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sockets", type=int, help="sockets in all (default 10000, quick 1500)")
    parser.add_argument("--rate", type=float, default=50.0, help="messages/s offered (default 50)")
    parser.add_argument("--global-every", type=int, default=50, help="one message in N to the global room")
    parser.add_argument("--warmup", type=float, help="seconds of stream before the kill (default 10, quick 5)")
    parser.add_argument("--after", type=float, help="seconds of stream once all are ready (default 5, quick 3)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile replica 1 (a survivor) from the kill to the end (pyinstrument: slows it a little)",
    )


def run(args: argparse.Namespace) -> report.Report:
    sockets = args.sockets or (1500 if args.quick else 10_000)
    warmup = args.warmup or (5.0 if args.quick else 10.0)
    after = args.after or (3.0 if args.quick else 5.0)
    workdir = processes.workdir("storm")
    print(
        f"storm: {REPLICAS} replicas + Redis + the MongoDB stand-in, {sockets:,} sockets in clans of {CLAN_SIZE}, "
        f"{args.rate:g} msg/s (1 in {args.global_every} global); logs in {workdir}",
        flush=True,
    )
    stand_in = _mongo_standin(workdir)
    redis = processes.redis_server(workdir)
    replicas: list[Server] = []
    load: LoadClient | None = None
    profile: Path | None = None
    sampler: profiling.Sampler | None = None
    try:
        stand_in.start(30)
        redis.start()
        env = {
            "REDIS_URL": f"redis://{processes.HOST}:{redis.port}/0",
            "MONGODB_URL": f"mongodb://{processes.HOST}:{stand_in.port}/?directConnection=true",
            "MONGODB_DB": f"chat_bench_storm_{uuid.uuid4().hex[:8]}",
            "CHAT_PLAYERS_FROM_DB": "false",  # players from their tokens: the stand-in holds no game database
            "CHAT_OUTBOUND_QUEUE_FRAMES": "4096",
        }
        profile = workdir / "replica-1.pyisession" if args.profile else None
        replicas = [processes.chat_server(workdir, env, profile=profile if n == 1 else None) for n in range(REPLICAS)]
        for replica in replicas:
            replica.start(60)
        if profile is not None:
            sampler = profiling.Sampler(replicas[1].pid, profile)
        victim, survivors = replicas[0], replicas[1:]
        load = LoadClient({"ports": [r.port for r in replicas]}, name="storm load", module="bench.stormclient").start()
        opened = load.call("open", count=sockets, clan_size=CLAN_SIZE, wait=600)
        if opened["ready"] < sockets:
            raise RuntimeError(f"only {opened['ready']}/{sockets} sockets ready: {opened['failures']}")
        print(f"    {sockets:,} sockets ready in {opened['seconds']:.1f}s", flush=True)
        started = load.call("start", rate=args.rate, global_every=args.global_every, sender_ports=_ports(survivors))
        stream_at = time.monotonic()
        measure_from = stream_at + min(2.0, warmup / 2)
        pids = {"stand-in": stand_in.pid, "redis": redis.pid} | {f"replica {n}": r.pid for n, r in enumerate(replicas)}
        storm = _Storm(load, victim, {name: pid for name, pid in pids.items() if pid is not None}, stream_at + warmup)
        storm.timeout = 60.0 if args.quick else STORM_TIMEOUT
        storm.before_kill = lambda: [_store_calls(r.port) for r in survivors]
        storm.standin_at_kill = lambda: _standin_commands(stand_in)[0]
        if sampler is not None:
            storm.at_kill = sampler.start
        timeline = storm.watch(after)
        calls_at_end = [_store_calls(r.port) for r in survivors]
        _, commands = _standin_commands(stand_in, storm.standin_log_at_kill)
        profile_problem = sampler.stop() if sampler is not None else None
        drain = 20.0 if args.quick else 60.0  # for the copies still queued in the servers
        result = load.call("stop", killed_at=storm.killed_at, measure_from=measure_from, drain_timeout=drain, wait=300)
    finally:
        if load is not None:
            load.stop()
        for replica in replicas:
            replica.stop()
        redis.stop()
        stand_in.stop()
    calls = _calls_between(storm.calls_at_kill, calls_at_end)
    hot = None
    if profile is not None:
        hot = profile_problem or profiling.hotspots(profile)
    options = {
        "sockets": sockets,
        "rate": args.rate,
        "global_every": args.global_every,
        "warmup": warmup,
        "after": after,
        "clan_size": CLAN_SIZE,
    }
    calls.update({f"stand-in {name}": [count, 0.0] for name, count in commands.items()})
    return _report(options, opened, started, result, timeline, calls, hot, workdir)


def _ports(servers: list[Server]) -> list[int]:
    return [server.port for server in servers]


def _mongo_standin(workdir: Path) -> Server:
    """``python -m tests.support.mongo_standin`` on a free port, pinned with the servers; ready once it listens."""
    port = processes.free_port()
    log_path = workdir / f"mongo-standin-{port}.log"
    argv = [
        *processes.taskset(processes.SERVER_CPU),
        sys.executable,
        "-m",
        "tests.support.mongo_standin",
        "--port",
        str(port),
    ]
    argv.append("--log-commands")  # a line per command: the storm counts the queries the stand-in answered

    def listening(path: Path) -> bool:
        return path.exists() and LISTENING.search(path.read_text(errors="replace")) is not None

    return Server("mongo stand-in", argv, log_path, partial(listening, log_path), port=port, cwd=processes.ROOT)


def _standin_commands(server: Server, since_byte: int = 0) -> tuple[int, Counter[str]]:
    """The stand-in's log size and the commands it ran after ``since_byte`` of it, by name."""
    assert server.log_path is not None
    data = server.log_path.read_bytes()
    names = Counter(line.rsplit(b": ", 1)[1].decode() for line in data[since_byte:].splitlines() if b": " in line)
    return len(data), names


def _store_calls(port: int) -> dict[str, list[float]]:
    """This replica's store calls so far by operation (``changes``: resumes and catch-ups): count and seconds."""
    try:
        with urllib.request.urlopen(f"http://{processes.HOST}:{port}/metrics", timeout=METRICS_TIMEOUT) as answer:
            text = answer.read().decode()
    except OSError as error:  # an overloaded replica may not answer: the run is still reported
        print(f"    replica on port {port} gave no /metrics: {error}", flush=True)
        return {}
    calls: dict[str, list[float]] = {}
    for kind, operation, value in STORE_CALLS.findall(text):
        calls.setdefault(operation, [0.0, 0.0])[0 if kind == "count" else 1] += float(value)
    return calls


def _calls_between(before: list[dict[str, list[float]]], after: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Store calls of all survivors between two readings, by operation: count and seconds."""
    total: dict[str, list[float]] = {}
    for earlier, later in zip(before, after, strict=True):
        if not earlier or not later:  # that replica did not answer one of the readings
            continue
        for operation, (count, seconds) in later.items():
            old = earlier.get(operation, [0.0, 0.0])
            sums = total.setdefault(operation, [0.0, 0.0])
            sums[0] += count - old[0]
            sums[1] += seconds - old[1]
    return total


def _core_busy_seconds(cpu: int) -> float:
    """Seconds core ``cpu`` was busy since boot (``/proc/stat``: all but idle and iowait), whoever ran there."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            ticks = [int(field) for field in line.split()[1:]]
            return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return 0.0


class _Storm:
    """The clock of one storm: poll clients and servers' CPU, kill at ``kill_at``, stop once all are ready again."""

    def __init__(self, load: LoadClient, victim: Server, pids: dict[str, int], kill_at: float) -> None:
        self.load, self.victim, self.kill_at = load, victim, kill_at
        self.pids = pids
        self.killed_at = kill_at
        self.before_kill: Callable[[], list[dict[str, list[float]]]] = list
        self.at_kill: Callable[[], None] = lambda: None
        self.calls_at_kill: list[dict[str, list[float]]] = []
        self.standin_at_kill: Callable[[], int] = lambda: 0
        self.standin_log_at_kill = 0
        self.timeout = STORM_TIMEOUT

    def watch(self, after: float) -> list[dict[str, Any]]:
        """Every ``POLL_SECONDS``: the clients' state and each server's CPU share, from the stream's start."""
        timeline: list[dict[str, Any]] = []
        pids = dict(self.pids)
        cpu = {name: processes.cpu_seconds(pid) for name, pid in pids.items()}
        core = _core_busy_seconds(processes.SERVER_CPU)
        wall = time.monotonic()
        killed = False
        recovered_at: float | None = None
        while True:
            time.sleep(POLL_SECONDS)
            if not killed and time.monotonic() >= self.kill_at:
                self._kill()
                killed = True
                del pids["replica 0"]
            status = self.load.call("status", wait=60)
            now = time.monotonic()
            used = {name: processes.cpu_seconds(pid) for name, pid in pids.items()}
            status["t"] = now - self.killed_at if killed else now - self.kill_at
            status["cpu_share"] = {name: (used[name] - cpu[name]) / (now - wall) for name in pids}
            busy = _core_busy_seconds(processes.SERVER_CPU)
            status["core_busy"] = (busy - core) / (now - wall)
            status["others_on_core"] = max(status["core_busy"] - sum(status["cpu_share"].values()), 0.0)
            cpu, wall, core = used, now, busy
            timeline.append(status)
            if killed and recovered_at is None and status["lost"] and status["ready"] == status["clients"]:
                recovered_at = now
                print(f"    every client ready again {now - self.killed_at:.1f}s after the kill", flush=True)
            if recovered_at is not None and now - recovered_at >= after:
                return timeline
            if killed and now - self.killed_at > self.timeout:
                print(f"    not every client ready after {self.timeout:g}s; stopping", flush=True)
                return timeline

    def _kill(self) -> None:
        """The load balancer drops the replica, then it dies: SIGKILL, no drain, no close frames."""
        self.calls_at_kill = self.before_kill()
        self.standin_log_at_kill = self.standin_at_kill()
        self.at_kill()
        self.load.call("down", port=self.victim.port)
        pid = self.victim.pid
        self.victim.kill()
        self.killed_at = time.monotonic()
        print(f"    SIGKILLed replica 0 (pid {pid}); waiting for every client to be ready", flush=True)


def _report(
    options: dict[str, Any],
    opened: dict[str, Any],
    started: dict[str, Any],
    result: dict[str, Any],
    timeline: list[dict[str, Any]],
    calls: dict[str, list[float]],
    hot: profiling.Hotspots | str | None,
    workdir: Path,
) -> report.Report:
    sockets = options["sockets"]
    out = report.Report(
        scenario="storm",
        title=f"Reconnect storm: {REPLICAS} replicas, {sockets:,} sockets, one replica SIGKILLed under "
        f"{options['rate']:g} msg/s",
        options=options,
    )
    lat = result["latency_ms"]
    all_ready = result["all_ready_seconds"]
    before, during = lat["before"].get("p99"), lat["storm"].get("p99")
    out.targets += [
        report.Target(
            "messages missed",
            "0 (every message to a client's rooms reaches it live or by resume)",
            f"{result['missed']:,} of {result['expected_copies']:,} copies "
            f"({result['sent']:,} messages, {result['unconfirmed']} never broadcast to their sender)",
            result["missed"] == 0 and result["unconfirmed"] == 0 and result["sent"] > 0,
        ),
        report.Target(
            "messages seen twice after de-duplication",
            "0 (a second version of a message passed the client's updatedAt check)",
            f"{result['seen_twice']} ({result['overlap_skipped']:,} copies of versions already held skipped)",
            result["seen_twice"] == 0,
        ),
        report.Target(
            "versions sent twice on one connection",
            "0 (README: between the replay and the live stream nothing is repeated)",
            f"{result['repeats']} {result['repeat_kinds'] or ''}".strip(),
            result["repeats"] == 0,
        ),
        report.Target(
            "time until every client is ready again",
            "measured (issue 17 sets no figure)",
            "not reached" if all_ready is None else f"{all_ready:.1f} s for {result['lost']:,} lost sockets",
            None if all_ready is not None else False,
        ),
        report.Target(
            "undisturbed clients' p99 during the storm",
            "measured, against before it",
            f"{_ms(during)} during vs {_ms(before)} before ({_ms(lat['after'].get('p99'))} after)",
            None,
        ),
    ]
    out.tables.append(_summary(opened, started, result, calls))
    out.tables.append(_latency_table(result))
    out.tables.append(_cpu_table(timeline))
    if isinstance(hot, profiling.Hotspots):
        out.tables.append(
            report.Table(
                f"Profile of replica 1 (a survivor) from the kill to the end, {hot.seconds:.1f} s sampled: "
                "self time by file, and the top functions including callees",
                ["where", "share"],
                [[f"file {name}", share] for name, share in hot.by_file[:10]]
                + [[f"in {name}", share] for name, share in hot.inclusive[:15]],
            )
        )
    elif hot is not None:
        out.notes.append(f"profile: {hot}")
    failures = {**result["failures"]}
    if failures or result["closes"]:
        out.tables.append(
            report.Table(
                "Connection attempts that failed, and connections that ended",
                ["what", "count"],
                [[f"failed: {k}", v] for k, v in sorted(failures.items())]
                + [[f"ended: {k}", v] for k, v in sorted(result["closes"].items())],
            )
        )
    out.notes += [
        "Clients follow chatserver/client.py: Backoff(first 0.25 s, cap 10 s, full jitter), a 5 s handshake "
        "timeout, since = newest updatedAt held less 2 s, a version (id, updatedAt) already held is skipped.",
        "The killed replica's port leaves the clients' live list just before the kill (a load balancer with an "
        "instant health check); every reconnect picks a survivor at random.",
        "Undisturbed clients: those that never lost their socket (all on the survivors). Latency is send to "
        "receive of live copies (not replays), measured in the load process on one clock; 'before' starts "
        "after a short warm-up, 'storm' runs from the kill until the last client is ready.",
        "missed: (client, message) pairs for messages sent to a room the client is in, never received live "
        "or by resume. unconfirmed: messages whose sender never received its own broadcast.",
        "CPU share: core seconds per wall second of each server process; all of them share core 0.",
        f"logs: {workdir}",
    ]
    out.raw = {"opened": opened, "started": started, "result": result, "timeline": timeline, "store_calls": calls}
    out.plot = "storm.png"
    report.plot(report.RESULTS / out.plot, _panels(result, timeline, sockets))
    return out


def _mean(count: float, seconds: float) -> str:
    return f"{count:,.0f}, {seconds / count * 1000:.1f} ms"


def _ms(value: float | None) -> str:
    return "none" if value is None else f"{value:.1f} ms"


def _summary(
    opened: dict[str, Any], started: dict[str, Any], result: dict[str, Any], calls: dict[str, list[float]]
) -> report.Table:
    ready = result["ready_after_kill"]
    rows: list[list[Any]] = [
        ["sockets opened before the stream (s)", opened["seconds"]],
        ["senders (every socket on the survivors, in turn) / clans", f"{started['senders']} / {started['clans']}"],
        ["messages sent (global)", f"{result['sent']:,} ({result['global_sent']:,})"],
        ["seconds the last copies took to arrive once the stream stopped", result["drain_seconds"]],
        ["copies expected / received", f"{result['expected_copies']:,} / {result['received_copies']:,}"],
        ["sockets lost at the kill", result["lost"]],
        ["of them ready again", result["reconnected"]],
        ["time from kill to every client ready (s)", result["all_ready_seconds"]],
        ["time to ready again p50 / p99 (s)", f"{ready.get('p50', 0):.2f} / {ready.get('p99', 0):.2f}"],
        ["connect attempts per lost client (attempts: clients)", str(result["attempts"])],
        ["successful connects in all (first opens included)", result["connects"]],
        ["copies received in a replay (before ready)", result["replayed"]],
        ["resumes answered recovered: false", result["not_recovered"]],
        *(
            [f"survivors' store calls '{operation}' from the kill to the end: count, mean ms", _mean(count, seconds)]
            for operation, (count, seconds) in sorted(calls.items())
            if count and not operation.startswith("stand-in")
        ),
        *(
            [f"commands the {operation} answered from the kill to the end", count]
            for operation, (count, _) in sorted(calls.items())
            if operation.startswith("stand-in")
        ),
        ["send lag p99 (ms)", result["send_lag_ms"].get("p99")],
    ]
    return report.Table("Summary", ["measure", "value"], rows)


def _latency_table(result: dict[str, Any]) -> report.Table:
    rows = []
    for phase in ("before", "storm", "after"):
        found = result["latency_ms"][phase]
        rows.append(
            [phase, result["samples"][phase], found.get("p50"), found.get("p95"), found.get("p99"), found.get("max")]
        )
    return report.Table(
        "Undisturbed clients' send-to-receive latency (ms)", ["phase", "copies", "p50", "p95", "p99", "max"], rows
    )


def _cpu_table(timeline: list[dict[str, Any]]) -> report.Table:
    names = list(timeline[0]["cpu_share"]) if timeline else []
    rows = [
        [
            f"{s['t']:.1f}",
            s["ready"],
            s["lost"] - s["reconnected"],
            *(s["cpu_share"].get(n) for n in names),
            s["others_on_core"],
            s["core_busy"],
        ]
        for s in timeline
    ]
    return report.Table(
        "Around the kill: clients ready, clients reconnecting, each server's CPU share (core seconds per second), "
        "what other processes took of core 0, and core 0 busy in all",
        ["s after kill", "ready", "reconnecting", *names, "others on core 0", "core 0 busy"],
        rows,
    )


def _panels(result: dict[str, Any], timeline: list[dict[str, Any]], sockets: int) -> list[report.Panel]:
    over_time = result["latency_over_time"]
    cpu_names = list(timeline[0]["cpu_share"]) if timeline else []
    return [
        report.Panel(
            "Clients ready after the kill",
            "seconds after the kill",
            "clients ready",
            {"ready": [(t, r) for t, r in result["ready_curve"]]},
            hline=(sockets, "all clients"),
        ),
        report.Panel(
            "Undisturbed clients' latency (0.5 s buckets)",
            "seconds after the kill",
            "send to receive (ms)",
            {p: [(t, found[p]) for t, found in over_time if p in found] for p in ("p50", "p99")},
            logy=True,
        ),
        report.Panel(
            "Servers' CPU share after the kill",
            "seconds after the kill",
            "core seconds per second",
            {name: [(s["t"], s["cpu_share"][name]) for s in timeline if name in s["cpu_share"]] for name in cpu_names},
        ),
    ]
