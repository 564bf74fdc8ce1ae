"""The package as a user installs it: a wheel in a clean venv, no source checkout, no test or tool code inside.

``chatserver/`` imports no test helper, tool or stand-in (the local cluster, the MongoDB stand-in and the
process supervisors live in ``tools/`` and ``tests/``), and every module of it imports in a venv that
holds only the wheel and its declared runtime dependencies.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from functools import partial
from pathlib import Path

import jwt
import pytest

from tests.support.harness import ROOT, clean_env
from tools.processes import ManagedProcess, free_port, http_ok

PACKAGE = ROOT / "chatserver"
NEVER_IN_THE_PACKAGE = {"tests", "tools", "bench", "mongomock", "mongomock_motor", "pytest"}
SECRET = "packaging-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789"
INSTALL_TIMEOUT = 600
NOT_COPIED = shutil.ignore_patterns(".git", "__pycache__", "*_cache", "*.egg-info", "build", "dist", ".venv")


def imported_top_level_modules() -> dict[str, set[str]]:
    """Every top-level module a file under ``chatserver/`` imports (absolute imports), and which files do."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_nothing_in_the_package_imports_test_tool_or_stand_in_code() -> None:
    imported = imported_top_level_modules()
    assert {name: files for name, files in imported.items() if name in NEVER_IN_THE_PACKAGE} == {}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv holding the wheel built from a copy of this tree; returns the venv's ``bin``."""
    work = tmp_path_factory.mktemp("packaging")
    source, wheels, venv = work / "source", work / "wheels", work / "venv"
    shutil.copytree(ROOT, source, ignore=NOT_COPIED)
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(source)]
    subprocess.run(build, check=True, capture_output=True, timeout=INSTALL_TIMEOUT)
    [wheel] = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        top_level = {name.split("/")[0] for name in archive.namelist()}
    assert top_level == {"chatserver", wheel.name.split("-")[0] + "-0.1.0.dist-info"}, "only the package ships"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=INSTALL_TIMEOUT)
    install = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=INSTALL_TIMEOUT)
    shutil.rmtree(source)  # from here on there is no checkout to fall back on
    return venv / "bin"


def run_installed(bin_dir: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A command of the installed venv, run away from any checkout with a clean environment."""
    elsewhere = bin_dir.parent.parent
    environment = clean_env(**env)
    environment.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(bin_dir / argv[0]), *argv[1:]], cwd=elsewhere, env=environment, capture_output=True, text=True, timeout=60
    )


@pytest.mark.timeout(INSTALL_TIMEOUT)
def test_the_installed_package_is_the_wheels_not_this_checkout(installed: Path) -> None:
    result = run_installed(installed, "python", "-c", "import chatserver; print(chatserver.__file__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(installed.parent / "lib")), result.stdout


@pytest.mark.timeout(INSTALL_TIMEOUT)
def test_every_module_of_the_package_imports_with_only_the_runtime_dependencies_installed(installed: Path) -> None:
    every_module = (
        "import importlib, pkgutil, chatserver\n"
        "for module in pkgutil.walk_packages(chatserver.__path__, 'chatserver.'):\n"
        "    if not module.name.endswith('__main__'):\n"
        "        importlib.import_module(module.name)\n"
    )
    result = run_installed(installed, "python", "-c", every_module)
    assert result.returncode == 0, result.stderr


@pytest.mark.timeout(INSTALL_TIMEOUT)
def test_chatserver_help_and_client_help_run_from_the_wheel(installed: Path) -> None:
    helped = run_installed(installed, "chatserver", "--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: chatserver")
    client = run_installed(installed, "chatserver", "client", "--help")
    assert client.returncode == 0, client.stderr
    assert client.stdout.startswith("usage: chatserver client")


@pytest.mark.timeout(INSTALL_TIMEOUT)
def test_chatserver_token_from_the_wheel_mints_a_token_signed_with_jwt_secret(installed: Path) -> None:
    result = run_installed(installed, "chatserver", "token", "--player-id", "player-1", JWT_SECRET=SECRET)
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["player_id"] == "player-1"


@pytest.mark.timeout(INSTALL_TIMEOUT)
def test_chatserver_from_the_wheel_serves_health_and_docs(installed: Path, tmp_path: Path) -> None:
    port = free_port()
    environment = clean_env(JWT_SECRET=SECRET)
    environment.pop("PYTHONPATH", None)
    server = ManagedProcess(
        "installed chatserver",
        [str(installed / "chatserver"), "--port", str(port)],
        tmp_path / "server.log",
        partial(http_ok, f"http://127.0.0.1:{port}/healthz"),
        port=port,
        env=environment,
        cwd=tmp_path,
    )
    try:
        server.start()
        assert http_ok(f"http://127.0.0.1:{port}/docs")
        # The console's page and assets are package data: they must be in the wheel too.
        for path in ("/console", "/console/assets/main.js", "/console/assets/console.css"):
            assert http_ok(f"http://127.0.0.1:{port}{path}"), path
    finally:
        server.stop()
