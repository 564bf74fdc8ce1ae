"""``python3 -m bench <scenario> [--quick] [options]``: run one benchmark scenario (or ``all``) and write its results.

Scenarios: ``fanout``, ``replicas``, ``connections``, ``history``, ``encoding``, ``filter``, ``collector``,
``storm``. Each writes
``bench/results/<scenario>.json``, ``.md`` and (but ``encoding`` and ``filter``) ``.png``. Every process a scenario
starts is stopped when it ends, fails, or is interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import signal
import sys
import time
from types import FrameType

from bench import processes, report

SCENARIOS = ("fanout", "replicas", "connections", "history", "encoding", "filter", "collector", "storm")
BENCH_EXTRA = ("matplotlib", "pyinstrument", "orjson", "socketio")  # pyproject.toml's bench extra (py-spy: optional)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="scenario", required=True)
    for name in SCENARIOS:
        module = importlib.import_module(f"bench.scenarios.{name}")
        sub = commands.add_parser(
            name,
            help=(module.__doc__ or name).splitlines()[0],
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("--quick", action="store_true", help="smaller sizes and shorter steps")
        module.add_arguments(sub)
    every = commands.add_parser("all", help="every scenario in turn, with its default options")
    every.add_argument("--quick", action="store_true", help="smaller sizes and shorter steps")
    return parser


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every ``finally`` that stops a process


def run_one(name: str, args: argparse.Namespace) -> None:
    module = importlib.import_module(f"bench.scenarios.{name}")
    started = time.monotonic()
    result = module.run(args)
    written = report.write(result)
    print(f"{name}: done in {time.monotonic() - started:.0f}s")
    for target in result.targets:
        met = "n/a" if target.met is None else ("met" if target.met else "NOT met")
        print(f"  target {target.name}: {target.goal}; measured {target.measured}: {met}")
    for path in written:
        print(f"  wrote {path}")


def _require_bench_extra() -> None:
    missing = [name for name in BENCH_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(
            f"python3 -m bench needs the bench extra ({', '.join(missing)} not installed): "
            "python3 -m pip install -e '.[bench]'"
        )


def main() -> None:
    _require_bench_extra()
    args = _parser().parse_args()
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    limit = processes.raise_open_files_limit()
    print(f"open files limit {limit}, {processes.cpu_count()} cores usable", flush=True)
    try:
        if args.scenario == "all":
            for name in SCENARIOS:
                defaults = _parser().parse_args([name, *(["--quick"] if args.quick else [])])
                run_one(name, defaults)
        else:
            run_one(args.scenario, args)
    except KeyboardInterrupt:
        sys.exit("interrupted: every process started by the benchmark was stopped")


if __name__ == "__main__":
    main()
