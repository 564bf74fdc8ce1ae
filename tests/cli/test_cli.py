"""The ``chatserver`` command as an operator runs it: minting tokens, refusing unsafe settings, and what it logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
from websockets.exceptions import InvalidStatus

from chatserver.settings import DEV_JWT_SECRET
from tests.conftest import ServerFactory
from tests.support.harness import ROOT, Client, ServerProcess, clean_env, free_port, log_entries, token, wait_for_log

CLI_TIMEOUT = 30.0
CLI_SECRET = "cli-test-secret-not-the-suite-secret-0123456789abcdef"
THIRTY_DAYS = 30 * 24 * 3600


def chatserver_command() -> list[str]:
    """``python -m chatserver`` from the tree under test: the ``chatserver`` script's own entry point
    (``chatserver.cli:main``), where an installed script may import another checkout's package."""
    return [sys.executable, "-m", "chatserver"]


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: Mapping[str, str]) -> Finished:
    """Run ``chatserver *args`` to completion; a run that outlives ``CLI_TIMEOUT`` (it started serving) fails."""
    process = subprocess.Popen(
        [*chatserver_command(), *args],
        env=dict(env),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so a runaway server and any workers stop together
    )
    try:
        stdout, stderr = process.communicate(timeout=CLI_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"chatserver {' '.join(args)} was still running after {CLI_TIMEOUT}s:\n{stdout!r}\n{stderr!r}")
    return Finished(process.returncode, stdout.decode(), stderr.decode())


@pytest.fixture
def server_without_secret(tmp_path: Path) -> Iterator[ServerProcess]:
    """``chatserver`` started with no JWT_SECRET and no MONGODB_URL at all (the harness always sets a secret)."""
    server = ServerProcess(suite_settings=False, command=chatserver_command())
    try:
        yield server.start(tmp_path)
    finally:
        server.stop()


# --- chatserver token ----------------------------------------------------------------------------


def test_token_command_prints_a_token_signed_with_jwt_secret_carrying_the_claims() -> None:
    before = int(time.time())
    result = run_cli(
        "token",
        "--player-id",
        "player-1",
        "--name",
        "Aino",
        "--clan-id",
        "clan-7",
        env=clean_env(JWT_SECRET=CLI_SECRET),
    )

    assert (result.returncode, result.stderr) == (0, "")
    printed = result.stdout.strip()
    assert result.stdout == f"{printed}\n"
    claims = jwt.decode(printed, CLI_SECRET, algorithms=["HS256"])
    assert jwt.get_unverified_header(printed)["alg"] == "HS256"
    assert {key: claims[key] for key in ("player_id", "name", "clan_id")} == {
        "player_id": "player-1",
        "name": "Aino",
        "clan_id": "clan-7",
    }
    assert before + THIRTY_DAYS <= claims["exp"] <= int(time.time()) + THIRTY_DAYS
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(printed, DEV_JWT_SECRET, algorithms=["HS256"])


async def test_token_from_the_command_connects_and_posts_as_its_name_and_clan(
    server_factory: ServerFactory, new_id: Callable[[], str]
) -> None:
    player_id, clan_id = new_id(), new_id()
    result = run_cli(
        "token", "--player-id", player_id, "--name", "Aino", "--clan-id", clan_id, env=clean_env(JWT_SECRET=CLI_SECRET)
    )
    assert result.returncode == 0, result.stderr
    server = server_factory(JWT_SECRET=CLI_SECRET)

    client = await Client.connect(server, result.stdout.strip())
    try:
        message = await client.post("clan", "minted on the command line")
    finally:
        await client.close()

    assert message["sender"] == {"_id": player_id, "name": "Aino", "avatar": None}
    assert message["clan_id"] == clan_id
    assert message["content"] == "minted on the command line"


# --- refusing to serve ---------------------------------------------------------------------------


def test_production_without_jwt_secret_exits_before_serving() -> None:
    result = run_cli("--port", str(free_port()), env=clean_env(CHAT_ENV="production"))

    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr == "chatserver: CHAT_ENV=production needs JWT_SECRET: the development secret is public\n"


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"MONGODB_URL": "mongodb://127.0.0.1:1", "CHAT_PLAYERS_FROM_DB": "false"},
        {"REDIS_URL": "redis://127.0.0.1:1"},
    ],
    ids=["nothing-shared", "mongodb-only", "redis-only"],
)
def test_two_workers_without_redis_and_mongodb_exit_with_a_clear_message(env: dict[str, str]) -> None:
    result = run_cli("--workers", "2", "--port", str(free_port()), env=clean_env(JWT_SECRET=CLI_SECRET, **env))

    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr == (
        "chatserver: --workers above 1 needs REDIS_URL and MONGODB_URL: separate processes with the in-process "
        "broker and memory store would not see each other's rooms or history\n"
    )


# --- what the server logs ------------------------------------------------------------------------


def test_server_without_jwt_secret_warns_about_the_development_secret_and_non_durable_history(
    server_without_secret: ServerProcess, new_id: Callable[[], str]
) -> None:
    warnings = [(e["logger"], e["message"]) for e in log_entries(server_without_secret) if e["level"] == "WARNING"]

    assert warnings == [
        (
            "chatserver.services",
            "JWT_SECRET is not set: using the public development secret; never do this in production",
        ),
        (
            "chatserver.services",
            "MONGODB_URL is not set: chat history is kept in this process's memory only and is NOT DURABLE "
            "(lost on restart, at most 200000 messages)",
        ),
    ]


def test_server_with_jwt_secret_warns_only_that_history_is_not_durable(embedded_server: ServerProcess) -> None:
    warnings = [e["message"] for e in log_entries(embedded_server) if e["level"] == "WARNING"]

    assert not any("JWT_SECRET" in message for message in warnings), warnings
    assert any("NOT DURABLE" in message for message in warnings), warnings


async def test_connecting_with_token_in_the_query_never_logs_the_token(
    server_factory: ServerFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory()
    accepted = token(new_id(), name="Aino", clan_id=new_id())
    refused = token(new_id(), secret="not-the-server-secret-but-long-enough-0123456789")

    client = await Client.connect(server, accepted)
    await client.close()
    with pytest.raises(InvalidStatus) as denial:
        await Client.connect(server, refused)
    assert denial.value.response.status_code == 401

    await wait_for_log(server, lambda e: e["message"].endswith('"WebSocket /ws/chat?token=[redacted]" [accepted]'))
    await wait_for_log(server, lambda e: e["message"].endswith('"WebSocket /ws/chat?token=[redacted]" 401'))
    log = server.log()
    for secret in (accepted, refused):
        header, claims, signature = secret.split(".")
        assert secret not in log
        assert claims not in log
        assert signature not in log
