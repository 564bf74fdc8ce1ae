"""``connections``: N idle authenticated sockets on one worker; memory per socket and connects per second.

The load process opens the sockets in steps (each one authenticated by its own token, joined to the
global room and its clan room, and answered with ``ready``), and after each step the benchmark reads
the server's resident memory (``VmRSS``). Memory per socket is the RSS growth from the first step's
baseline (one socket open) divided by the sockets added; the slope over the later steps is reported
too, since Python's allocator keeps freed arenas and the first steps also pay one-off costs. Kernel
socket buffers are not in RSS, so this is the Python side of a socket: uvicorn's protocol object, the
websockets state machine, Starlette's ``WebSocket``, our ``Connection``.

In the same run: the same steps against the ceiling (``bench/ceiling_server.py``, a bare ``websockets``
server that sends ``ready``), the baseline for both figures; a breakdown of an idle socket's bytes by
the file that allocated them (a server under tracemalloc, ``bench/traced_server.py``, snapshots with
one socket and with ``--breakdown`` sockets); and, with py-spy installed, a sampled profile of the
server over one step of connects, split into the steps of a connect.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench import processes, report
from bench.processes import LoadClient, Server

KIB = 1024
CLAN_SIZE = 30
TARGET_KIB = 20
TARGET_CONNECTS = 3000
CATEGORIES = (  # where an idle socket's bytes go, by the path of the file that allocated them
    ("uvicorn: HTTP and WebSocket protocol objects", "/uvicorn/"),
    ("websockets: handshake and frame state", "/websockets/"),
    ("asyncio: queue, events, task", "/asyncio/"),
    ("Starlette", "/starlette/"),
    ("chat server: connection, rooms, admission", "/chatserver/"),
)
STEPS = (  # a connect's steps, by the first frame of each on a sampled stack (innermost wins)
    ("token check (PyJWT)", ("authenticate",)),
    ("joins (hub, rooms)", ("Hub.attach",)),
    ("first frame (ready: render, write)", ("_send_ready", "Connection.flush", "Flusher._flush_all")),
    ("rest of the admission (origin, dialect, rate)", ("_admit",)),
    ("WebSocket handshake (websockets, accept)", ("handle_connect", "WebSocket.accept", "ServerProtocol")),
    ("HTTP request and upgrade (httptools, request head)", ("HttpToolsProtocol", "request_head")),
    ("event loop and sockets (uvloop, outside Python)", ("Runner.run",)),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sockets", type=int, help="idle sockets at the end (default 10000, quick 10000)")
    parser.add_argument("--steps", type=int, default=5, help="steps the sockets are opened in (default 5)")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight at most (default 100)")
    parser.add_argument("--breakdown", type=int, default=2000, help="sockets of the tracemalloc breakdown (0: none)")
    parser.add_argument("--profile-sockets", type=int, default=3000, help="connects profiled with py-spy (0: none)")


def run(args: argparse.Namespace) -> report.Report:
    total = args.sockets or 10_000
    step = max(total // args.steps, 1)
    workdir = processes.workdir("connections")
    print(f"connections: {total:,} idle sockets in steps of {step:,}; logs in {workdir}", flush=True)
    chat = processes.chat_server(workdir, {"CHAT_OUTBOUND_QUEUE_FRAMES": "1024"})
    ours, alive = _steps(chat, total, step, args.concurrency, check_alive=True)
    print("  baseline: the same steps against the websockets ceiling", flush=True)
    ceiling = processes.server(
        "ceiling",
        [sys.executable, "-m", "bench.ceiling_server", "--port", str(port := processes.free_port())],
        port,
        workdir,
    )
    baseline, _ = _steps(ceiling, total, step, args.concurrency, check_alive=False)
    breakdown = _breakdown(workdir, args.breakdown) if args.breakdown else None
    profile = _profile(workdir, args.profile_sockets, args.concurrency) if args.profile_sockets else None
    return _report(total, step, ours, baseline, alive, breakdown, profile, workdir)


def _steps(
    server: Server, total: int, step: int, concurrency: int, check_alive: bool
) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """Open ``total`` sockets on ``server`` in steps, reading its RSS and CPU after each."""
    load: LoadClient | None = None
    points: list[dict[str, float]] = []
    alive: dict[str, Any] = {}
    try:
        server.start()
        load = LoadClient({"ports": [server.port]}).start()
        first = load.call("open", count=1, clan_size=CLAN_SIZE)
        time.sleep(1.0)
        points.append({"sockets": first["open"], "rss": processes.rss_bytes(server.pid), "connects_per_second": 0.0})
        while points[-1]["sockets"] < total:
            count = min(step, total - int(points[-1]["sockets"]))
            cpu = processes.cpu_seconds(server.pid)
            opened = load.call("open", count=count, clan_size=CLAN_SIZE, concurrency=concurrency)
            cpu = processes.cpu_seconds(server.pid) - cpu
            if opened["failed"]:
                raise RuntimeError(f"{opened['failed']} sockets failed to open: {opened['failures']}")
            time.sleep(1.0)  # let the server settle before reading memory
            rss = processes.rss_bytes(server.pid)
            points.append(
                {
                    "sockets": opened["open"],
                    "rss": rss,
                    "connects_per_second": opened["opened"] / opened["seconds"],
                    "server_cpu_per_connect_ms": cpu / opened["opened"] * 1000,
                    "server_cpu_share": cpu / opened["seconds"],
                    "client_cpu_share": opened["client_cpu_seconds"] / opened["seconds"],
                    "connect_p50_ms": opened["connect_ms"].get("p50", 0.0),
                    "connect_p99_ms": opened["connect_ms"].get("p99", 0.0),
                }
            )
            print(
                f"    {server.name}: {opened['open']:,} open, RSS {rss / KIB / KIB:,.1f} MiB, "
                f"{points[-1]['connects_per_second']:,.0f} connects/s",
                flush=True,
            )
        if check_alive:
            alive = load.call("flood", messages=1, senders=[0], expect_per_message=total, window=1, timeout=60)
    finally:
        if load is not None:
            load.stop()
        server.stop()
    return points, alive


def _breakdown(workdir: Path, sockets: int) -> list[tuple[str, float]]:
    """Bytes per idle socket by category and by file: tracemalloc with one socket open against ``sockets``."""
    print(f"  breakdown: {sockets:,} sockets on a server under tracemalloc", flush=True)
    prefix = workdir / "heap"
    port = processes.free_port()
    argv = [sys.executable, "-m", "bench.traced_server", str(prefix), "--host", processes.HOST, "--port", str(port)]
    env = processes.clean_env({"PYTHONPATH": str(processes.ROOT), "CHAT_OUTBOUND_QUEUE_FRAMES": "1024"})
    server = processes.server(
        "traced", [*argv, "--log-level", "warning"], port, workdir, env=env, health="/healthz", cwd=processes.SOURCE
    )
    load: LoadClient | None = None
    try:
        server.start()
        load = LoadClient({"ports": [port]}).start()
        for count, snapshot in ((1, 0), (sockets, 1)):
            load.call("open", count=count, clan_size=CLAN_SIZE)
            time.sleep(1.0)
            os.kill(server.pid, signal.SIGUSR1)
            _wait_for(Path(f"{prefix}.{snapshot}"))
    finally:
        if load is not None:
            load.stop()
        server.stop()
    before, after = (tracemalloc.Snapshot.load(f"{prefix}.{n}") for n in (0, 1))
    by_file = [
        (str(stat.traceback[0].filename), stat.size_diff / sockets) for stat in after.compare_to(before, "filename")
    ]
    other = "other: JSON, JWT, the standard library"
    sizes = dict.fromkeys([name for name, _ in CATEGORIES] + [other], 0.0)
    for file, size in by_file:
        sizes[next((name for name, part in CATEGORIES if part in file), other)] += size
    top = [(_short(file), size) for file, size in by_file[:12]]
    return [*sizes.items(), ("total", sum(sizes.values())), *[(f"  {file}", size) for file, size in top]]


def _short(file: str) -> str:
    """``uvicorn/protocols/...``, ``asyncio/queues.py``, ``chatserver/ws.py``: the path from its package."""
    if "site-packages/" in file:
        return file.split("site-packages/", 1)[1]
    if "/chatserver/" in file:
        return "chatserver/" + file.split("/chatserver/", 1)[1]
    return "/".join(file.split("/")[-2:])


def _wait_for(path: Path, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() or path.stat().st_size == 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no heap snapshot at {path}")
        time.sleep(0.2)
    time.sleep(1.0)  # the dump may still be being written


def _profile(workdir: Path, sockets: int, concurrency: int) -> dict[str, Any] | None:
    """py-spy samples the server while ``sockets`` connect; the samples are split by connect step."""
    if shutil.which("py-spy") is None:
        print("  profile: py-spy is not installed; skipped", flush=True)
        return None
    print(f"  profile: {sockets:,} connects sampled by py-spy", flush=True)
    server = processes.chat_server(workdir, {"CHAT_OUTBOUND_QUEUE_FRAMES": "1024"})
    load: LoadClient | None = None
    raw = workdir / "connects.pyspy"
    try:
        server.start()
        load = LoadClient({"ports": [server.port]}).start()
        load.call("open", count=100, clan_size=CLAN_SIZE)
        spy = subprocess.Popen(
            ["py-spy", "record", "-p", str(server.pid), "-r", "500", "-f", "raw", "-o", str(raw), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        cpu = processes.cpu_seconds(server.pid)
        opened = load.call("open", count=sockets, clan_size=CLAN_SIZE, concurrency=concurrency)
        cpu = processes.cpu_seconds(server.pid) - cpu
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
    finally:
        if load is not None:
            load.stop()
        server.stop()
    if not raw.exists():
        return None
    return {"steps": _split_by_step(raw), "cpu_per_connect_us": cpu / opened["opened"] * 1e6}


def _split_by_step(raw: Path) -> list[tuple[str, float]]:
    """Share of the samples in each connect step: a stack counts for the innermost step frame it holds."""
    counts = dict.fromkeys([name for name, _ in STEPS] + ["other (logging, metrics, idle)"], 0)
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        frames, samples = stack.split(";"), int(number)
        total += samples
        step = next(
            (name for frame in reversed(frames) for name, marks in STEPS if any(m in frame for m in marks)),
            "other (logging, metrics, idle)",
        )
        counts[step] += samples
    return [(name, count / total if total else 0.0) for name, count in counts.items()]


def _per_socket_kib(points: list[dict[str, float]]) -> float:
    base, last = points[0], points[-1]
    return (last["rss"] - base["rss"]) / max(last["sockets"] - base["sockets"], 1) / KIB


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _report(
    total: int,
    step: int,
    points: list[dict[str, float]],
    baseline: list[dict[str, float]],
    alive: dict[str, Any],
    breakdown: list[tuple[str, float]] | None,
    profile: dict[str, Any] | None,
    workdir: Path,
) -> report.Report:
    last = points[-1]
    per_socket, ceiling_per_socket = _per_socket_kib(points), _per_socket_kib(baseline)
    slope = None
    if len(points) >= 3:
        second = points[1]
        slope = (last["rss"] - second["rss"]) / max(last["sockets"] - second["sockets"], 1) / KIB
    rate = _mean([p["connects_per_second"] for p in points[1:]])
    ceiling_rate = _mean([p["connects_per_second"] for p in baseline[1:]])
    cpu_ms = _mean([p["server_cpu_per_connect_ms"] for p in points[1:]])
    ceiling_cpu_ms = _mean([p["server_cpu_per_connect_ms"] for p in baseline[1:]])
    result = report.Report(
        scenario="connections",
        title=f"Idle connections: {total:,} authenticated sockets on one worker",
        options={"sockets": total, "step": step, "clan_size": CLAN_SIZE},
    )
    result.targets += [
        report.Target(
            "memory per idle socket",
            f"<= {TARGET_KIB} KiB (RSS delta)",
            f"{per_socket:.1f} KiB from 1 to {last['sockets']:,.0f} sockets "
            f"({per_socket / ceiling_per_socket:.2f}x the websockets ceiling's {ceiling_per_socket:.1f} KiB)",
            per_socket <= TARGET_KIB,
        ),
        report.Target(
            "connects on one core",
            f">= {TARGET_CONNECTS:,}/s (authenticated, both rooms joined, ready sent)",
            f"{rate:,.0f}/s ({rate / ceiling_rate:.2f}x the ceiling's {ceiling_rate:,.0f}/s); server CPU "
            f"{cpu_ms * 1000:.0f} us a connect, {1000 / cpu_ms:,.0f}/s if the core did nothing else",
            rate >= TARGET_CONNECTS,
        ),
    ]
    columns = [
        "server",
        "sockets open",
        "server RSS MiB",
        "KiB per socket since 1",
        "connects/s in the step",
        "server CPU us per connect",
        "server core share",
        "load core share",
        "connect p50 ms",
        "connect p99 ms",
    ]
    rows = []
    for name, run in (("chatserver", points), ("ceiling (websockets)", baseline)):
        for p in run:
            first = p is run[0]
            rows.append(
                [
                    name,
                    p["sockets"],
                    p["rss"] / KIB / KIB,
                    None if first else (p["rss"] - run[0]["rss"]) / max(p["sockets"] - run[0]["sockets"], 1) / KIB,
                    p["connects_per_second"] or None,
                    None if first else p["server_cpu_per_connect_ms"] * 1000,
                    p.get("server_cpu_share"),
                    p.get("client_cpu_share"),
                    p.get("connect_p50_ms"),
                    p.get("connect_p99_ms"),
                ]
            )
    result.tables.append(report.Table("Steps, chatserver and the websockets ceiling", columns, rows))
    result.tables.append(
        report.Table(
            "Summary",
            ["measure", "chatserver", "ceiling", "ratio"],
            [
                [
                    "RSS per idle socket, first to last step (KiB)",
                    per_socket,
                    ceiling_per_socket,
                    per_socket / ceiling_per_socket,
                ],
                ["RSS per idle socket, slope after the first step (KiB)", slope, None, None],
                ["connects per second, mean of the steps", rate, ceiling_rate, rate / ceiling_rate],
                ["server CPU per connect (us)", cpu_ms * 1000, ceiling_cpu_ms * 1000, cpu_ms / ceiling_cpu_ms],
                [
                    "one global message reached every socket afterwards",
                    "yes" if alive["complete"] else "**no**",
                    None,
                    None,
                ],
            ],
        )
    )
    if breakdown is not None:
        result.tables.append(
            report.Table(
                "Where an idle socket's bytes go (tracemalloc, by allocating file)",
                ["part", "bytes per socket"],
                [[name, size] for name, size in breakdown],
            )
        )
    if profile is not None:
        result.tables.append(
            report.Table(
                f"A connect step by step (py-spy samples; {profile['cpu_per_connect_us']:.0f} us server CPU a "
                "connect under the sampler)",
                ["step", "share of server samples", "us a connect"],
                [[name, share, share * profile["cpu_per_connect_us"]] for name, share in profile["steps"]],
            )
        )
    result.notes += [
        "A connect is TCP connect + HTTP upgrade + JWT verification + joining the global and a clan room + "
        "the `ready` frame, measured by the load process (pinned to the other core) at most "
        "`--concurrency` handshakes at a time. The ceiling does the TCP connect, the upgrade and `ready` only.",
        "RSS is read from /proc after a one-second pause; it includes allocator slack, not kernel socket buffers. "
        "The tracemalloc breakdown counts Python allocations only (no allocator slack, no C structures "
        "outside Python's allocator), so its total is below the RSS figure.",
        f"server logs and raw profiles: {workdir}",
    ]
    result.raw = {
        "points": points,
        "baseline": baseline,
        "alive_check": alive,
        "breakdown": breakdown,
        "profile": profile,
    }
    result.plot = "connections.png"
    report.plot(
        report.RESULTS / result.plot,
        [
            report.Panel(
                "Server memory against idle sockets",
                "sockets open",
                "RSS (MiB)",
                {
                    "chatserver RSS": [(p["sockets"], p["rss"] / KIB / KIB) for p in points],
                    "websockets ceiling RSS": [(p["sockets"], p["rss"] / KIB / KIB) for p in baseline],
                },
            ),
            report.Panel(
                "Connect rate per step",
                "sockets open at the end of the step",
                "connects/s",
                {
                    "chatserver": [(p["sockets"], p["connects_per_second"]) for p in points[1:]],
                    "websockets ceiling": [(p["sockets"], p["connects_per_second"]) for p in baseline[1:]],
                },
                hline=(TARGET_CONNECTS, "target"),
            ),
        ],
    )
    return result
