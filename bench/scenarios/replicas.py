"""``replicas``: Redis and 3 replicas, clans of 30 spread over them; send-to-receive latency as load steps up.

The benchmark starts ``redis-server`` and three ``chatserver`` processes with ``REDIS_URL`` (what
``tools/cluster.py`` does, minus nginx: the load process connects to the replicas directly, so the
figures hold no proxy hop; the replicas run from ``BENCH_CHATSERVER_SOURCE`` like every server here).
Socket ``i`` goes to replica ``i % 3`` and clan ``i // 30``, so every clan has members on every
replica and every message crosses Redis. All sockets are also in the global room, and one message in ``--global-every``
goes there. The load is open-loop: messages leave on a fixed schedule whatever the answers, each
carrying its send time, and the load process (same clock) notes when each copy arrives. Each step
reports p50/p95/p99 of send-to-receive latency over every delivered copy (after an unrecorded
two-second warm-up); the answer is the highest offered load with p99 under 50 ms.

On a 2-core machine the three replicas and Redis share core 0 and the load process has core 1, so
the figures are those of one core running the whole cluster, not of three machines.

``--redis-cluster N`` runs the same steps twice, on one Redis and then on a local N-master Redis
Cluster (``tools/redis_cluster.py``, also on core 0), and reports both side by side with each Redis
process's CPU share (the cluster's per shard).

Then, in the same run, the same steps against the peer (``bench/socketio_peer.py``: three
python-socketio replicas sharing rooms through its ``AsyncRedisManager`` on a fresh Redis, driven
over Socket.IO), reported as ours/peer per step (``--no-peer`` skips it). The target is the
issue's: p99 under 50 ms at 600 messages/s.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from bench import processes, report
from bench.processes import LoadClient, Server
from tools.redis_cluster import LocalRedisCluster

CLAN_SIZE = 30
REPLICAS = 3
TARGET_P99_MS = 50.0
TARGET_RATE = 600.0
OURS = "one Redis"
PEER = "peer (python-socketio), one Redis"
STOP_P99_MS = 1000.0  # a step this slow means the cluster is saturated: higher steps add nothing


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sockets", type=int, help="sockets in all (default 1500, quick 900)")
    parser.add_argument("--rates", help="offered messages/s per step, comma-separated")
    parser.add_argument("--seconds", type=float, help="seconds per step (default 8, quick 4)")
    parser.add_argument("--global-every", type=int, default=100, help="one message in N to the global room")
    parser.add_argument("--redis-cluster", type=int, metavar="N", help="also run on an N-master Redis Cluster")
    parser.add_argument(
        "--peer",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the steps against the python-socketio peer (default on)",
    )


def run(args: argparse.Namespace) -> report.Report:
    sockets = args.sockets or (900 if args.quick else 1500)
    default_rates = "50,100,200,400,600,800" if args.quick else "50,100,200,300,400,600,800,1200"
    rates = [float(r) for r in (args.rates or default_rates).split(",")]
    seconds = args.seconds or (4.0 if args.quick else 8.0)
    workdir = processes.workdir("replicas")
    print(
        f"replicas: {REPLICAS} replicas + Redis, {sockets:,} sockets in clans of {CLAN_SIZE}, "
        f"steps {rates} msg/s of {seconds:g}s; logs in {workdir}",
        flush=True,
    )
    runs = {OURS: _run_on_one_redis(workdir / "one-redis", sockets, rates, seconds, args.global_every)}
    if args.redis_cluster:
        name = f"Redis Cluster, {args.redis_cluster} masters"
        print(f"  now on a {args.redis_cluster}-master Redis Cluster", flush=True)
        runs[name] = _run_on_cluster(
            workdir / "redis-cluster", args.redis_cluster, sockets, rates, seconds, args.global_every
        )
    if args.peer:
        print("  now the python-socketio peer on one Redis", flush=True)
        runs[PEER] = _run_on_one_redis(workdir / "peer", sockets, rates, seconds, args.global_every, peer=True)
    return _report(sockets, seconds, args.global_every, runs, workdir, cluster=bool(args.redis_cluster))


def _run_on_one_redis(
    workdir: Any, sockets: int, rates: list[float], seconds: float, global_every: int, peer: bool = False
) -> list[dict[str, Any]]:
    workdir.mkdir(parents=True)
    redis = processes.redis_server(workdir)
    try:
        redis.start()
        assert redis.pid is not None
        url = f"redis://{processes.HOST}:{redis.port}/0"
        return _steps(workdir, url, {"redis": redis.pid}, sockets, rates, seconds, global_every, peer)
    finally:
        redis.stop()


def _run_on_cluster(
    workdir: Any, masters: int, sockets: int, rates: list[float], seconds: float, global_every: int
) -> list[dict[str, Any]]:
    with LocalRedisCluster(masters, workdir=workdir, wrapper=processes.taskset(processes.SERVER_CPU)) as cluster:
        shards = {f"shard {n}": node.pid for n, node in enumerate(cluster.nodes) if node.pid is not None}
        return _steps(workdir, cluster.url, shards, sockets, rates, seconds, global_every)


def _steps(
    workdir: Any,
    redis_url: str,
    redis_pids: dict[str, int],
    sockets: int,
    rates: list[float],
    seconds: float,
    global_every: int,
    peer: bool = False,
) -> list[dict[str, Any]]:
    """Three replicas (ours, or the peer's) on ``redis_url`` and the load stepped up; each step with the
    CPU share of each Redis."""
    replicas: list[Server] = []
    load: LoadClient | None = None
    steps: list[dict[str, Any]] = []
    env = {"REDIS_URL": redis_url, "CHAT_OUTBOUND_QUEUE_FRAMES": "4096"}
    make_replica: Callable[[], Server] = (
        (lambda: processes.peer_server(workdir, redis_url)) if peer else (lambda: processes.chat_server(workdir, env))
    )
    try:
        replicas = [make_replica() for _ in range(REPLICAS)]
        for replica in replicas:
            replica.start()
        server_pids = [*redis_pids.values(), *(r.pid for r in replicas)]
        ports = [r.port for r in replicas]
        load = LoadClient({"ports": ports, "protocol": "socketio" if peer else "chat"}).start()
        opened = load.call("open", count=sockets, clan_size=CLAN_SIZE, listener="latency")
        if opened["open"] < sockets:
            raise RuntimeError(f"only {opened['open']}/{sockets} sockets opened: {opened['failures']}")
        load.call("load", rate=rates[0], seconds=2.0, global_every=global_every, wait=60)  # warm-up
        for rate in rates:
            before = {pid: processes.cpu_seconds(pid) for pid in server_pids}
            started = time.monotonic()
            step = load.call("load", rate=rate, seconds=seconds, global_every=global_every, wait=seconds + 60)
            wall = time.monotonic() - started
            used = {pid: processes.cpu_seconds(pid) - before[pid] for pid in server_pids}
            step["wall_seconds"] = wall
            step["server_cpu_seconds"] = sum(used.values())
            step["server_cpu_share"] = sum(used.values()) / wall  # sending and draining
            step["redis_cpu_share"] = {name: used[pid] / wall for name, pid in redis_pids.items()}
            steps.append(step)
            if step["latency_ms"].get("p99", float("inf")) > STOP_P99_MS or step["delivered"] < step["expected"]:
                print("    saturated: no higher steps", flush=True)
                break
    finally:
        if load is not None:
            load.stop()
        for replica in replicas:
            replica.stop()
    return steps


def _report(
    sockets: int,
    seconds: float,
    global_every: int,
    runs: dict[str, list[dict[str, Any]]],
    workdir: Any,
    cluster: bool = False,
) -> report.Report:
    result = report.Report(
        scenario="replicas-cluster" if cluster else "replicas",  # a cluster run keeps the plain one's files
        title=f"Cross-replica latency: {' beside '.join(runs)}; {REPLICAS} replicas, "
        f"{sockets:,} sockets in clans of {CLAN_SIZE}",
        options={"sockets": sockets, "seconds_per_step": seconds, "global_every": global_every, "runs": list(runs)},
    )
    steps = runs[OURS]
    if len(runs) > 1:
        result.tables.append(_side_by_side(runs))
    if PEER in runs:
        result.tables.append(_against_peer(steps, runs[PEER]))
    for name, run in runs.items():
        title = "Steps" if name == OURS else f"Steps, {name}"
        result.tables.append(_steps_table(f"{title} (latency in ms, send to receive, over every delivered copy)", run))
    result.targets.append(_target("replicas p99", steps, True))
    if PEER in runs:
        result.targets.append(_target("peer (python-socketio) p99", runs[PEER], None))
    result.notes += [
        "A message is one frame from the first socket of a clan (clans in turn); one in "
        f"{global_every} goes to the global room ({sockets:,} copies) instead of the clan ({CLAN_SIZE} copies).",
        "p50...max are over every copy; the clan and global columns split the p99 by room, since one global "
        "message is a burst of copies written one after another on each replica.",
        "send lag p99: how far the load process fell behind its schedule; near 0 means the offered load was offered.",
        "server core share: CPU seconds of the 3 replicas and Redis per wall second of the step (sending and "
        "draining); they share one core, so near 1.0 means that core was saturated. load CPU share: the load "
        "process's CPU seconds per wall second of the same window, on its own core.",
        "the peer's steps run after ours, on a fresh Redis, with the same sockets, clans and schedule; it stores "
        "nothing, so ours pays for its store, its checks and its per-room ordering inside the ratio.",
        f"cluster logs: {workdir}",
    ]
    result.raw = {"steps": steps, "runs": runs}
    result.plot = f"{result.scenario}.png"
    report.plot(
        report.RESULTS / result.plot,
        [
            report.Panel(
                "Send-to-receive latency against offered load",
                "offered messages/s",
                "latency (ms)",
                _latency_series(runs),
                logy=True,
                hline=(TARGET_P99_MS, "p99 target 50 ms"),
            ),
            report.Panel(
                "Deliveries per second against offered load",
                "offered messages/s",
                "deliveries/s",
                {
                    f"delivered, {name}" if len(runs) > 1 else "delivered": [
                        (s["rate"], s["delivered"] / (s["sending_seconds"] or 1)) for s in run
                    ]
                    for name, run in runs.items()
                },
            ),
        ],
    )
    return result


def _load_share(step: dict[str, Any]) -> float:
    return float(step["client_cpu_seconds"] / (step.get("wall_seconds") or step["sending_seconds"] or 1))


def _steps_table(title: str, steps: list[dict[str, Any]]) -> report.Table:
    rows = []
    for s in steps:
        lat = s["latency_ms"]
        rows.append(
            [
                s["rate"],
                s["sent"],
                s["delivered"],
                s["expected"],
                s["delivered"] / (s["sending_seconds"] or 1),
                lat.get("p50"),
                lat.get("p95"),
                lat.get("p99"),
                lat.get("max"),
                s["clan_latency_ms"].get("p99"),
                s["global_latency_ms"].get("p99"),
                s["send_lag_ms"].get("p99"),
                s["server_cpu_share"],
                _load_share(s),
                s["closed"],
            ]
        )
    columns = ["offered msg/s", "sent", "delivered", "expected", "deliveries/s", "p50", "p95", "p99", "max"]
    columns += ["clan copies p99", "global copies p99", "send lag p99", "server core share", "load CPU share"]
    return report.Table(title, [*columns, "closed"], rows)


def _target(name: str, steps: list[dict[str, Any]], judged: bool | None) -> report.Target:
    """p99 under 50 ms at the 600 msg/s step; a run that saturated below it did not reach it."""
    goal = f"< {TARGET_P99_MS:g} ms at {TARGET_RATE:g} msg/s"
    at = next((s for s in steps if s["rate"] == TARGET_RATE), None)
    if at is None:
        last = steps[-1] if steps else None
        if last is None or last["rate"] > TARGET_RATE:
            return report.Target(name, goal, f"not run (no {TARGET_RATE:g} msg/s step)", None)
        measured = f"not reached: saturated at {last['rate']:g} msg/s (p99 {last['latency_ms'].get('p99', 0):.1f} ms)"
        return report.Target(name, goal, measured, False if judged else None)
    p99 = at["latency_ms"].get("p99", float("inf"))
    complete = at["delivered"] >= at["expected"]
    copies = "every copy delivered" if complete else f"{at['delivered']:,}/{at['expected']:,} delivered"
    measured = (
        f"p99 {p99:.1f} ms ({_rate_of(at):,.0f} deliveries/s, {copies}; "
        f"server core share {at['server_cpu_share']:.2f}, load CPU share {_load_share(at):.2f})"
    )
    return report.Target(name, goal, measured, (p99 < TARGET_P99_MS and complete) if judged else None)


def _against_peer(ours: list[dict[str, Any]], peer: list[dict[str, Any]]) -> report.Table:
    """Per offered load: ours/peer in deliveries per second and in the servers' CPU per delivery, both p99s."""
    by_rate = {s["rate"]: s for s in peer}
    rows = []
    for s in ours:
        other = by_rate.get(s["rate"])
        rows.append(
            [
                s["rate"],
                s["latency_ms"].get("p99"),
                other["latency_ms"].get("p99") if other else None,
                _rate_of(s) / _rate_of(other) if other else None,
                _cpu_us(s),
                _cpu_us(other) if other else None,
                _cpu_us(other) / _cpu_us(s) if other else None,
                f"{s['server_cpu_share']:.2f} / {_load_share(s):.2f}",
                f"{other['server_cpu_share']:.2f} / {_load_share(other):.2f}" if other else "saturated below",
            ]
        )
    return report.Table(
        "Ours against the python-socketio peer, same steps (servers' CPU: 3 replicas + Redis; shares: server / load)",
        [
            "offered msg/s",
            "ours p99 ms",
            "peer p99 ms",
            "ours/peer deliveries/s",
            "ours server CPU us per delivery",
            "peer server CPU us per delivery",
            "peer/ours CPU per delivery",
            "ours shares",
            "peer shares",
        ],
        rows,
    )


def _rate_of(step: dict[str, Any]) -> float:
    return float(step["delivered"] / (step["sending_seconds"] or 1))


def _cpu_us(step: dict[str, Any]) -> float:
    return float(step["server_cpu_seconds"] / max(step["delivered"], 1) * 1e6)


def _side_by_side(runs: dict[str, list[dict[str, Any]]]) -> report.Table:
    """Per offered load, each run's deliveries/s, p99 and the CPU share of each of its Redis processes."""
    rows = []
    for name, steps in runs.items():
        for s in steps:
            shares = ", ".join(f"{shard} {share:.2f}" for shard, share in s["redis_cpu_share"].items())
            rows.append(
                [name, s["rate"], s["delivered"] / (s["sending_seconds"] or 1), s["latency_ms"].get("p99"), shares]
            )
    return report.Table(
        "Every run side by side (Redis CPU: core seconds per wall second, per process)",
        ["run", "offered msg/s", "deliveries/s", "p99 ms", "Redis CPU share"],
        rows,
    )


def _latency_series(runs: dict[str, list[dict[str, Any]]]) -> dict[str, list[tuple[float, float]]]:
    """p50/p95/p99 of the one run, or the p99 of each run when there are several."""
    if len(runs) == 1:
        [steps] = runs.values()
        return {
            p: [(s["rate"], s["latency_ms"][p]) for s in steps if p in s["latency_ms"]] for p in ("p50", "p95", "p99")
        }
    return {
        f"p99, {name}": [(s["rate"], s["latency_ms"]["p99"]) for s in steps if "p99" in s["latency_ms"]]
        for name, steps in runs.items()
    }
