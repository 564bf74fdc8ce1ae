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
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench import processes, report
from bench.processes import LoadClient, Server

CLAN_SIZE = 30
REPLICAS = 3
TARGET_P99_MS = 50.0
STOP_P99_MS = 1000.0  # a step this slow means the cluster is saturated: higher steps add nothing


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sockets", type=int, help="sockets in all (default 1500, quick 900)")
    parser.add_argument("--rates", help="offered messages/s per step, comma-separated")
    parser.add_argument("--seconds", type=float, help="seconds per step (default 8, quick 4)")
    parser.add_argument("--global-every", type=int, default=100, help="one message in N to the global room")


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
    redis = processes.redis_server(workdir)
    replicas: list[Server] = []
    load: LoadClient | None = None
    steps: list[dict[str, Any]] = []
    try:
        redis.start()
        env = {"REDIS_URL": f"redis://{processes.HOST}:{redis.port}/0", "CHAT_OUTBOUND_QUEUE_FRAMES": "4096"}
        replicas = [processes.chat_server(workdir, env) for _ in range(REPLICAS)]
        for replica in replicas:
            replica.start()
        server_pids = [redis.pid, *(replica.pid for replica in replicas)]
        load = LoadClient({"ports": [replica.port for replica in replicas]}).start()
        opened = load.call("open", count=sockets, clan_size=CLAN_SIZE, listener="latency")
        if opened["open"] < sockets:
            raise RuntimeError(f"only {opened['open']}/{sockets} sockets opened: {opened['failures']}")
        load.call("load", rate=rates[0], seconds=2.0, global_every=args.global_every, wait=60)  # warm-up
        for rate in rates:
            cpu, started = sum(processes.cpu_seconds(pid) for pid in server_pids), time.monotonic()
            step = load.call("load", rate=rate, seconds=seconds, global_every=args.global_every, wait=seconds + 60)
            cpu = sum(processes.cpu_seconds(pid) for pid in server_pids) - cpu
            step["server_cpu_share"] = cpu / (time.monotonic() - started)  # sending and draining
            steps.append(step)
            if step["latency_ms"].get("p99", float("inf")) > STOP_P99_MS or step["delivered"] < step["expected"]:
                print("    saturated: no higher steps", flush=True)
                break
    finally:
        if load is not None:
            load.stop()
        for replica in replicas:
            replica.stop()
        redis.stop()
    return _report(sockets, seconds, args.global_every, steps, workdir)


def _report(
    sockets: int, seconds: float, global_every: int, steps: list[dict[str, Any]], workdir: Any
) -> report.Report:
    result = report.Report(
        scenario="replicas",
        title=f"Cross-replica latency: Redis + {REPLICAS} replicas, {sockets:,} sockets in clans of {CLAN_SIZE}",
        options={"sockets": sockets, "seconds_per_step": seconds, "global_every": global_every},
    )
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
    result.raw = {"steps": steps}
    result.plot = "replicas.png"
    report.plot(
        report.RESULTS / result.plot,
        [
            report.Panel(
                "Send-to-receive latency against offered load",
                "offered messages/s",
                "latency (ms)",
                {
                    p: [(s["rate"], s["latency_ms"][p]) for s in steps if p in s["latency_ms"]]
                    for p in ("p50", "p95", "p99")
                },
                logy=True,
                hline=(TARGET_P99_MS, "p99 target 50 ms"),
            ),
            report.Panel(
                "Deliveries per second against offered load",
                "offered messages/s",
                "deliveries/s",
                {"delivered": [(s["rate"], s["delivered"] / (s["sending_seconds"] or 1)) for s in steps]},
            ),
        ],
    )
    return result
