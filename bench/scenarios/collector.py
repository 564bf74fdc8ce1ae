"""``collector``: how long a full garbage-collector pass stops a worker, with and without ``gc.freeze()``.

A pass stops everything the worker does, so its length is added to the latency of every frame in
flight. Each variant runs in a fresh interpreter (freezing is for the whole process): an embedded
``Services`` is started as a worker starts it, then, with ``freeze``, ``collector.freeze_startup``
runs as ``ChatServer.startup`` does; the memory store is then filled through ``MessageStore.add``
in steps, and after each step a full pass (``gc.collect()``) is timed, best of ``--repeats``. The
tracked objects a pass walks are counted beside it. The ratio frozen/plain at each step is the
figure; the absolute milliseconds depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

from bench import report
from bench.processes import LIMITS_OFF, SECRET

FILL_STEPS = (0, 50_000, 100_000, 200_000)
QUICK_STEPS = (0, 50_000, 100_000)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, help="full passes timed per step, best kept (default 5, quick 3)")


def run(args: argparse.Namespace) -> report.Report:
    repeats = args.repeats or (3 if args.quick else 5)
    steps = QUICK_STEPS if args.quick else FILL_STEPS
    print(f"collector: full passes with {', '.join(f'{n:,}' for n in steps)} stored messages", flush=True)
    variants: dict[str, list[dict[str, float]]] = {}
    for name, freeze in (("plain", False), ("gc.freeze() after start-up", True)):
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            variants[name] = pool.submit(_measure, freeze, steps, repeats).result()
        for point in variants[name]:
            print(
                f"    {name}: {point['stored']:,.0f} stored, {point['tracked']:,.0f} tracked, "
                f"full pass {point['pass_ms']:.1f} ms",
                flush=True,
            )
    return _report(variants, repeats)


def _measure(freeze: bool, steps: tuple[int, ...], repeats: int) -> list[dict[str, float]]:
    """In a fresh interpreter: start the worker's services, maybe freeze, then fill and time passes."""
    os.environ.update({"JWT_SECRET": SECRET, **LIMITS_OFF, "CHAT_MEMORY_MAX_MESSAGES": str(max(steps) + 1)})
    return asyncio.run(_fill_and_time(freeze, steps, repeats))


async def _fill_and_time(freeze: bool, steps: tuple[int, ...], repeats: int) -> list[dict[str, float]]:
    from chatserver import collector
    from chatserver.protocol.vocabulary import RoomKey
    from chatserver.services import Services
    from chatserver.settings import Settings
    from chatserver.store.base import NewMessage

    services = Services.build(Settings.from_env())
    await services.start()
    if freeze:
        collector.freeze_startup()
    rooms = [RoomKey.global_room(), *(RoomKey.clan(f"clan-{n}") for n in range(9))]
    points, stored = [], 0
    for target in steps:
        while stored < target:
            room = rooms[stored % len(rooms)]
            new = NewMessage(room, "be0000000000000000000001", "bench", None, f"message {stored}", None)
            await services.store.add(new)
            stored += 1
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            gc.collect()
            best = min(best, time.perf_counter() - started)
        points.append({"stored": stored, "tracked": len(gc.get_objects()), "pass_ms": best * 1000})
    await services.stop()
    return points


def _report(variants: dict[str, list[dict[str, float]]], repeats: int) -> report.Report:
    plain, frozen = variants.values()
    result = report.Report(
        scenario="collector",
        title="Full garbage-collector passes on a worker, with and without gc.freeze() after start-up",
        options={"repeats": repeats, "steps": [p["stored"] for p in plain]},
    )
    result.tables.append(
        report.Table(
            "A full pass (best of the repeats)",
            [
                "stored messages",
                "tracked, plain",
                "pass ms, plain",
                "tracked, frozen",
                "pass ms, frozen",
                "frozen/plain",
            ],
            [
                [p["stored"], p["tracked"], p["pass_ms"], f["tracked"], f["pass_ms"], f["pass_ms"] / p["pass_ms"]]
                for p, f in zip(plain, frozen, strict=True)
            ],
        )
    )
    last_plain, last_frozen = plain[-1], frozen[-1]
    result.targets.append(
        report.Target(
            "gc.freeze() after start-up shortens a full pass",
            "frozen/plain < 1 with the store full",
            f"{last_frozen['pass_ms']:.1f} ms against {last_plain['pass_ms']:.1f} ms at "
            f"{last_plain['stored']:,.0f} stored messages ({last_frozen['pass_ms'] / last_plain['pass_ms']:.2f}x)",
            last_frozen["pass_ms"] < last_plain["pass_ms"],
        )
    )
    result.notes += [
        "Frozen objects are what start-up built (modules, settings, routes, the vocabulary): they live as long as "
        "the worker and no pass needs to walk them. Messages stored afterwards are still walked; with MongoDB "
        "(`MONGODB_URL`) the store keeps none in the worker.",
        "The same passes run in production, timed into `chat_gc_pause_seconds` by generation.",
    ]
    result.raw = variants
    result.plot = "collector.png"
    report.plot(
        report.RESULTS / result.plot,
        [
            report.Panel(
                "A full pass against stored messages",
                "stored messages",
                "ms (best of the repeats)",
                {name: [(p["stored"], p["pass_ms"]) for p in points] for name, points in variants.items()},
            )
        ],
    )
    return result
