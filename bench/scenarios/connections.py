"""``connections``: N idle authenticated sockets on one worker; memory per socket and connects per second.

The load process opens the sockets in steps (each one authenticated by its own token, joined to the
global room and its clan room, and answered with ``ready``), and after each step the benchmark reads
the server's resident memory (``VmRSS``). Memory per socket is the RSS growth from the first step's
baseline (one socket open) divided by the sockets added; the slope over the later steps is reported
too, since Python's allocator keeps freed arenas and the first steps also pay one-off costs. Kernel
socket buffers are not in RSS, so this is the Python side of a socket: uvicorn's protocol object, the
websockets state machine, Starlette's ``WebSocket``, our ``Connection``, its queue and writer task.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench import processes, report
from bench.processes import LoadClient

KIB = 1024
CLAN_SIZE = 30
TARGET_KIB = 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sockets", type=int, help="idle sockets at the end (default 10000, quick 10000)")
    parser.add_argument("--steps", type=int, default=5, help="steps the sockets are opened in (default 5)")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight at most (default 100)")


def run(args: argparse.Namespace) -> report.Report:
    total = args.sockets or 10_000
    step = max(total // args.steps, 1)
    workdir = processes.workdir("connections")
    print(f"connections: {total:,} idle sockets in steps of {step:,}; logs in {workdir}", flush=True)
    server = processes.chat_server(workdir, {"CHAT_OUTBOUND_QUEUE_FRAMES": "1024"})
    load: LoadClient | None = None
    points: list[dict[str, float]] = []
    try:
        server.start()
        load = LoadClient({"ports": [server.port]}).start()
        first = load.call("open", count=1, clan_size=CLAN_SIZE)
        time.sleep(1.0)
        base_rss = processes.rss_bytes(server.pid)
        points.append({"sockets": first["open"], "rss": base_rss, "connects_per_second": 0.0})
        while points[-1]["sockets"] < total:
            count = min(step, total - int(points[-1]["sockets"]))
            cpu = processes.cpu_seconds(server.pid)
            opened = load.call("open", count=count, clan_size=CLAN_SIZE, concurrency=args.concurrency)
            cpu = processes.cpu_seconds(server.pid) - cpu
            if opened["failed"]:
                raise RuntimeError(f"{opened['failed']} sockets failed to open: {opened['failures']}")
            time.sleep(1.0)  # let the writer tasks settle before reading memory
            rss = processes.rss_bytes(server.pid)
            points.append(
                {
                    "sockets": opened["open"],
                    "rss": rss,
                    "connects_per_second": opened["opened"] / opened["seconds"],
                    "server_cpu_per_connect_ms": cpu / opened["opened"] * 1000,
                    "connect_p50_ms": opened["connect_ms"].get("p50", 0.0),
                    "connect_p99_ms": opened["connect_ms"].get("p99", 0.0),
                }
            )
            print(
                f"    {opened['open']:,} open, RSS {rss / KIB / KIB:,.1f} MiB, "
                f"{points[-1]['connects_per_second']:,.0f} connects/s",
                flush=True,
            )
        alive = load.call("flood", messages=1, senders=[0], expect_per_message=total, window=1, timeout=60)
    finally:
        if load is not None:
            load.stop()
        server.stop()
    return _report(total, step, points, alive, workdir)


def _report(
    total: int, step: int, points: list[dict[str, float]], alive: dict[str, Any], workdir: Path
) -> report.Report:
    base, last = points[0], points[-1]
    per_socket = (last["rss"] - base["rss"]) / max(last["sockets"] - base["sockets"], 1) / KIB
    slope = None
    if len(points) >= 3:
        second = points[1]
        slope = (last["rss"] - second["rss"]) / max(last["sockets"] - second["sockets"], 1) / KIB
    rates = [p["connects_per_second"] for p in points[1:]]
    result = report.Report(
        scenario="connections",
        title=f"Idle connections: {total:,} authenticated sockets on one worker",
        options={"sockets": total, "step": step, "clan_size": CLAN_SIZE},
    )
    result.targets.append(
        report.Target(
            "memory per idle socket",
            f"<= {TARGET_KIB} KiB (RSS delta)",
            f"{per_socket:.1f} KiB from 1 to {last['sockets']:,.0f} sockets",
            per_socket <= TARGET_KIB,
        )
    )
    result.tables.append(
        report.Table(
            "Steps",
            [
                "sockets open",
                "server RSS MiB",
                "KiB per socket since 1",
                "connects/s in the step",
                "server CPU ms per connect",
                "connect p50 ms",
                "connect p99 ms",
            ],
            [
                [
                    p["sockets"],
                    p["rss"] / KIB / KIB,
                    (p["rss"] - base["rss"]) / max(p["sockets"] - base["sockets"], 1) / KIB if p is not base else None,
                    p["connects_per_second"] or None,
                    p.get("server_cpu_per_connect_ms"),
                    p.get("connect_p50_ms"),
                    p.get("connect_p99_ms"),
                ]
                for p in points
            ],
        )
    )
    result.tables.append(
        report.Table(
            "Summary",
            ["measure", "value"],
            [
                ["RSS per idle socket, first to last step (KiB)", per_socket],
                ["RSS per idle socket, slope after the first step (KiB)", slope],
                ["connects per second, mean of the steps", sum(rates) / len(rates) if rates else None],
                ["one global message reached every socket afterwards", "yes" if alive["complete"] else "**no**"],
            ],
        )
    )
    result.notes += [
        "A connect is TCP connect + HTTP upgrade + JWT verification + joining the global and a clan room + "
        "the `ready` frame, measured by the load process (pinned to the other core) at most "
        "`--concurrency` handshakes at a time.",
        "RSS is read from /proc after a one-second pause; it includes allocator slack, not kernel socket buffers.",
        f"server log: {workdir}",
    ]
    result.raw = {"points": points, "alive_check": alive}
    result.plot = "connections.png"
    report.plot(
        report.RESULTS / result.plot,
        [
            report.Panel(
                "Server memory against idle sockets",
                "sockets open",
                "RSS (MiB)",
                {"chatserver RSS": [(p["sockets"], p["rss"] / KIB / KIB) for p in points]},
            ),
            report.Panel(
                "Connect rate per step",
                "sockets open at the end of the step",
                "connects/s",
                {"chatserver": [(p["sockets"], p["connects_per_second"]) for p in points[1:]]},
            ),
        ],
    )
    return result
