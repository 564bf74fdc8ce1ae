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
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench import processes, report
from bench.processes import LoadClient, Server
from tools.redis_cluster import LocalRedisCluster

CLAN_SIZE = 30
REPLICAS = 3
TARGET_P99_MS = 50.0
STOP_P99_MS = 1000.0  # a step this slow means the cluster is saturated: higher steps add nothing


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sockets", type=int, help="sockets in all (default 1500, quick 900)")
    parser.add_argument("--rates", help="offered messages/s per step, comma-separated")
    parser.add_argument("--seconds", type=float, help="seconds per step (default 8, quick 4)")
    parser.add_argument("--global-every", type=int, default=100, help="one message in N to the global room")
    parser.add_argument("--redis-cluster", type=int, metavar="N", help="also run on an N-master Redis Cluster")


def run(args: argparse.Namespace) -> report.Report:
    sockets = args.sockets or (900 if args.quick else 1500)
    default_rates = "50,100,200,400,800" if args.quick else "50,100,200,300,400,600,800,1200"
    rates = [float(r) for r in (args.rates or default_rates).split(",")]
    seconds = args.seconds or (4.0 if args.quick else 8.0)
    workdir = processes.workdir("replicas")
    print(
        f"replicas: {REPLICAS} replicas + Redis, {sockets:,} sockets in clans of {CLAN_SIZE}, "
        f"steps {rates} msg/s of {seconds:g}s; logs in {workdir}",
        flush=True,
    )
    runs = {"one Redis": _run_on_one_redis(workdir / "one-redis", sockets, rates, seconds, args.global_every)}
    if args.redis_cluster:
        name = f"Redis Cluster, {args.redis_cluster} masters"
        print(f"  now on a {args.redis_cluster}-master Redis Cluster", flush=True)
        runs[name] = _run_on_cluster(
            workdir / "redis-cluster", args.redis_cluster, sockets, rates, seconds, args.global_every
        )
    return _report(sockets, seconds, args.global_every, runs, workdir)


def _run_on_one_redis(
    workdir: Any, sockets: int, rates: list[float], seconds: float, global_every: int
) -> list[dict[str, Any]]:
    workdir.mkdir(parents=True)
    redis = processes.redis_server(workdir)
    try:
        redis.start()
        assert redis.pid is not None
        url = f"redis://{processes.HOST}:{redis.port}/0"
        return _steps(workdir, url, {"redis": redis.pid}, sockets, rates, seconds, global_every)
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
) -> list[dict[str, Any]]:
    """Three replicas on ``redis_url`` and the load stepped up; each step with the CPU share of each Redis."""
    replicas: list[Server] = []
    load: LoadClient | None = None
    steps: list[dict[str, Any]] = []
    try:
        env = {"REDIS_URL": redis_url, "CHAT_OUTBOUND_QUEUE_FRAMES": "4096"}
        replicas = [processes.chat_server(workdir, env) for _ in range(REPLICAS)]
        for replica in replicas:
            replica.start()
        server_pids = [*redis_pids.values(), *(replica.pid for replica in replicas)]
        load = LoadClient({"ports": [replica.port for replica in replicas]}).start()
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
    sockets: int, seconds: float, global_every: int, runs: dict[str, list[dict[str, Any]]], workdir: Any
) -> report.Report:
    result = report.Report(
        scenario="replicas" if len(runs) == 1 else "replicas-cluster",  # a cluster run keeps the plain one's files
        title=f"Cross-replica latency: {' beside '.join(runs)}; {REPLICAS} chat replicas, "
        f"{sockets:,} sockets in clans of {CLAN_SIZE}",
        options={"sockets": sockets, "seconds_per_step": seconds, "global_every": global_every, "runs": list(runs)},
    )
    steps = runs["one Redis"]
    if len(runs) > 1:
        result.tables.append(_side_by_side(runs))
    rows = []
    for s in steps:
        lat = s["latency_ms"]
        deliveries = s["delivered"] / (s["sending_seconds"] or 1)
        rows.append(
            [
                s["rate"],
                s["sent"],
                s["delivered"],
                s["expected"],
                deliveries,
                lat.get("p50"),
                lat.get("p95"),
                lat.get("p99"),
                lat.get("max"),
                s["clan_latency_ms"].get("p99"),
                s["global_latency_ms"].get("p99"),
                s["send_lag_ms"].get("p99"),
                s["server_cpu_share"],
                s["client_cpu_seconds"] / (s["sending_seconds"] or 1),
                s["closed"],
            ]
        )
    result.tables.append(
        report.Table(
            "Steps (latency in ms, send to receive, over every delivered copy)",
            [
                "offered msg/s",
                "sent",
                "delivered",
                "expected",
                "deliveries/s",
                "p50",
                "p95",
                "p99",
                "max",
                "clan copies p99",
                "global copies p99",
                "send lag p99",
                "server core share",
                "load CPU share",
                "closed",
            ],
            rows,
        )
    )
    good = [s for s in steps if s["delivered"] >= s["expected"] and s["latency_ms"].get("p99", 1e9) < TARGET_P99_MS]
    best = max(good, key=lambda s: s["rate"]) if good else None
    top = steps[-1] if steps else None
    measured = "no step had p99 under 50 ms"
    if best is not None:
        measured = (
            f"p99 {best['latency_ms']['p99']:.1f} ms at {best['rate']:,.0f} msg/s "
            f"({best['delivered'] / best['sending_seconds']:,.0f} deliveries/s)"
        )
    if top is not None:
        measured += f"; highest step driven {top['rate']:,.0f} msg/s: p99 {top['latency_ms'].get('p99', 0):.1f} ms"
    result.targets.append(
        report.Target(
            "replicas p99",
            f"< {TARGET_P99_MS:g} ms at the highest step driven",
            measured,
            None if top is None else (best is top),
        )
    )
    result.notes += [
        "A message is one frame from the first socket of a clan (clans in turn); one in "
        f"{global_every} goes to the global room ({sockets:,} copies) instead of the clan ({CLAN_SIZE} copies).",
        "p50...max are over every copy; the clan and global columns split the p99 by room, since one global "
        "message is a burst of copies written one after another on each replica.",
        "send lag p99: how far the load process fell behind its schedule; near 0 means the offered load was offered.",
        "server core share: CPU seconds of the 3 replicas and Redis per wall second of the step (sending and "
        "draining); they share one core, "
        "so near 1.0 means that core was saturated.",
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


def _side_by_side(runs: dict[str, list[dict[str, Any]]]) -> report.Table:
    """Per offered load, each topology's deliveries/s, p99 and the CPU share of each of its Redis processes."""
    rows = []
    for name, steps in runs.items():
        for s in steps:
            shares = ", ".join(f"{shard} {share:.2f}" for shard, share in s["redis_cpu_share"].items())
            rows.append(
                [name, s["rate"], s["delivered"] / (s["sending_seconds"] or 1), s["latency_ms"].get("p99"), shares]
            )
    return report.Table(
        "One Redis and a Redis Cluster side by side (Redis CPU: core seconds per wall second, per process)",
        ["topology", "offered msg/s", "deliveries/s", "p99 ms", "Redis CPU share"],
        rows,
    )


def _latency_series(runs: dict[str, list[dict[str, Any]]]) -> dict[str, list[tuple[float, float]]]:
    """p50/p95/p99 of the one run, or the p99 of each topology when there are several."""
    if len(runs) == 1:
        [steps] = runs.values()
        return {
            p: [(s["rate"], s["latency_ms"][p]) for s in steps if p in s["latency_ms"]] for p in ("p50", "p95", "p99")
        }
    return {
        f"p99, {name}": [(s["rate"], s["latency_ms"]["p99"]) for s in steps if "p99" in s["latency_ms"]]
        for name, steps in runs.items()
    }
