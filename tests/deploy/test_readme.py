"""The README as an operator reads it: every setting the app reads and every metric it exports is there."""

from __future__ import annotations

import re

from chatserver.metrics import REGISTRY
from chatserver.settings import markdown_table
from tests.deploy.test_deploy_dockerfile import app_env_names
from tests.support.harness import ROOT

README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_the_configuration_table_documents_exactly_the_settings_the_app_reads() -> None:
    rows = [line for line in section("Configuration").splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split(" | ")[0])}
    assert documented == app_env_names()


def test_the_configuration_table_is_the_one_the_settings_declarations_produce() -> None:
    assert markdown_table() in section("Configuration"), "regenerate it with: chatserver settings --markdown"


def test_the_operating_section_names_every_metric() -> None:
    exported = {metric.name for metric in REGISTRY.collect()}
    operating = section("Operating")
    assert {name for name in exported if f"`{name}" not in operating} == set()


def test_the_quick_start_is_two_commands_and_ci_runs_the_test_one() -> None:
    quick_start = section("Quick start")
    commands = re.search(r"```sh\n(.*?)```", quick_start, re.S)
    assert commands is not None
    lines = [line.split("#")[0].strip() for line in commands.group(1).splitlines() if line.strip()]
    assert lines == ["scripts/setup && .venv/bin/chatserver", "scripts/test"]
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("\nscripts/test")
