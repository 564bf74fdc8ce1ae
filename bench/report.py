"""Results on disk: one JSON, one Markdown table and one PNG per scenario, in ``bench/results/``.

JSON keeps every measured number (for comparing runs by script); Markdown is what a reviewer reads
(tables, targets met or not, notes on what limits each figure); the PNG shows latency or cost
against load. File names are the scenario's name, so a new run replaces the previous one's files.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.processes import SOURCE

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Target:
    """One goal of the issue: what was asked, what was measured, and whether it was met."""

    name: str
    goal: str
    measured: str
    met: bool | None  # None: could not be measured in this run


@dataclass
class Report:
    scenario: str
    title: str
    options: dict[str, Any]
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    plot: str | None = None
    context: dict[str, Any] = field(default_factory=lambda: machine_context())


def machine_context() -> dict[str, Any]:
    """What the figures depend on: CPU, core count, Python, the server stack's versions, when."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    versions: dict[str, str | None] = {}
    for package in ("uvicorn", "starlette", "websockets", "uvloop", "httptools", "pydantic"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "versions": versions,
        "chatserver_source": str(SOURCE),
    }


def write(report: Report, directory: Path = RESULTS) -> list[Path]:
    """Write ``<scenario>.json`` and ``<scenario>.md``; the PNG is written by the scenario with ``plot``."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"{report.scenario}.json"
    json_path.write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
    markdown_path = directory / f"{report.scenario}.md"
    markdown_path.write_text(markdown(report))
    written = [json_path, markdown_path]
    if report.plot:
        written.append(directory / report.plot)
    return written


def markdown(report: Report) -> str:
    context = report.context
    versions = ", ".join(f"{k} {v}" for k, v in context["versions"].items() if v)
    lines = [
        f"# {report.title}",
        "",
        f"Run {context['date']} on {context['cores']} cores ({context['cpu'] or 'unknown CPU'}), "
        f"Python {context['python']}, {versions}; chat server source `{context['chatserver_source']}`.",
        "",
        "Options: " + ", ".join(f"`{k}={v}`" for k, v in report.options.items()),
        "",
    ]
    if report.targets:
        lines += ["## Targets", "", "| target | goal | measured | met |", "|---|---|---|---|"]
        for target in report.targets:
            met = "n/a" if target.met is None else ("yes" if target.met else "**no**")
            lines.append(f"| {target.name} | {target.goal} | {target.measured} | {met} |")
        lines.append("")
    for table in report.tables:
        lines += [f"## {table.title}", "", _table(table.columns, table.rows), ""]
    if report.plot:
        lines += [f"![{report.title}]({report.plot})", ""]
    if report.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in report.notes] + [""]
    return "\n".join(lines)


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(out)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}" if value >= 1 else f"{value:.3f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


@dataclass
class Panel:
    """One chart of a PNG: a line per series of (x, y) points, an optional threshold line."""

    title: str
    xlabel: str
    ylabel: str
    series: dict[str, list[tuple[float, float]]]
    logx: bool = False
    logy: bool = False
    hline: tuple[float, str] | None = None


def plot(path: Path, panels: Sequence[Panel]) -> Path:
    """One PNG with the panels side by side (matplotlib's Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes_row = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), dpi=100, squeeze=False)
    for axes, panel in zip(axes_row[0], panels, strict=True):
        for label, points in panel.series.items():
            if points:
                xs, ys = zip(*points, strict=True)
                axes.plot(xs, ys, marker="o", label=label)
        if panel.hline is not None:
            axes.axhline(panel.hline[0], color="red", linestyle="--", linewidth=1, label=panel.hline[1])
        if panel.logx:
            axes.set_xscale("log")
        if panel.logy:
            axes.set_yscale("log")
        axes.set_title(panel.title)
        axes.set_xlabel(panel.xlabel)
        axes.set_ylabel(panel.ylabel)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
