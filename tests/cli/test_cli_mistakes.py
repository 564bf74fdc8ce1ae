"""Every mistake a newcomer makes with ``chatserver`` gets one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatserver.settings import markdown_table
from tests.cli.test_cli import CLI_SECRET, chatserver_command, run_cli
from tests.conftest import ServerFactory
from tests.support.harness import ROOT, ServerProcess, clean_env, free_port, log_entries
from tools.processes import ProcessError

PROCESS_TIMEOUT = 20.0


def one_line_refusal(returncode: int, *args: str, **env: str) -> str:
    """Run ``chatserver *args``; assert it exits with ``returncode``, prints nothing on stdout, one stderr line."""
    result = run_cli(*args, env=clean_env(**env))
    assert (result.returncode, result.stdout) == (returncode, ""), result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    return result.stderr.rstrip("\n")


# --- options: argparse refusals on one line, exit 2 -------------------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--port", "99999"], "chatserver: argument --port: a port is a number from 1 to 65535, not '99999'"),
        (["--port", "-5"], "chatserver: argument --port: a port is a number from 1 to 65535, not '-5'"),
        (
            ["serve", "--port", "http"],
            "chatserver serve: argument --port: a port is a number from 1 to 65535, not 'http'",
        ),
        (["--workers", "0"], "chatserver: argument --workers: a whole number of at least 1, not '0'"),
        (
            ["--log-level", "verbose"],
            "chatserver: argument --log-level: invalid choice: 'verbose' "
            "(choose from 'critical', 'error', 'warning', 'info', 'debug', 'trace')",
        ),
        (["serve-now"], "chatserver: argument COMMAND: invalid choice: 'serve-now'"),
        (
            ["token", "--player-id", "p1", "--avatar", "[1]"],
            "chatserver token: argument --avatar: a JSON object such as '{\"hat\": 2}', not '[1]'",
        ),
        (
            ["token", "--player-id", "p1", "--avatar", "{hat"],
            "chatserver token: argument --avatar: not JSON (Expecting property name enclosed in double quotes): '{hat'",
        ),
        (
            ["token", "--player-id", "p1", "--ttl", "-5"],
            "chatserver token: argument --ttl: a number of seconds above 0 (the token would be born expired), not '-5'",
        ),
        (["token", "--player-id", " "], "chatserver token: argument --player-id: must not be blank"),
        (["token"], "chatserver token: the following arguments are required: --player-id"),
        (
            ["membership", "leave", "--player-id", "p1", "--clan-id", "c1", "--url", "replica:8080"],
            "chatserver membership: argument --url: an http:// or https:// URL, not 'replica:8080'",
        ),
        (
            ["client", "--url", "http://127.0.0.1:8080/ws/chat", "--token", "t"],
            "chatserver client: argument --url: a ws:// or wss:// URL, not 'http://127.0.0.1:8080/ws/chat'",
        ),
        (
            ["client", "--url", "ws://127.0.0.1:8080/ws/chat", "--token", "t", "--since", "yesterday"],
            "chatserver client: argument --since: an ISO 8601 time such as 2026-11-25T18:15:33.925Z, not 'yesterday'",
        ),
    ],
)
def test_a_bad_option_is_one_line_naming_it_and_exit_2(args: list[str], line: str) -> None:
    command = line.split(":")[0]
    refusal = one_line_refusal(2, *args)
    assert refusal.startswith(line), refusal
    assert refusal.endswith(f"(see {command} --help)")


# --- settings: one line, exit 1, before anything starts ----------------------------------------------


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"REDIS_URL": "localhost:6379"},
            "chatserver: REDIS_URL must be a URL starting with redis://..., rediss://..., unix://..., not "
            "'localhost:6379'",
        ),
        (
            {"MONGODB_URL": "127.0.0.1:27017"},
            "chatserver: MONGODB_URL must be a URL starting with mongodb://..., mongodb+srv://..., "
            "not '127.0.0.1:27017'",
        ),
        ({"CHAT_ENV": "prod"}, "chatserver: CHAT_ENV must be development or production, not 'prod'"),
        (
            {"CHAT_ENV": "production", "JWT_SECRET": "a"},
            "chatserver: JWT_SECRET must be at least 32 bytes for HS256 in production, not 1 "
            "(e.g. openssl rand -hex 32)",
        ),
        ({"CHAT_MAX_SOCKETS": "lots"}, "chatserver: CHAT_MAX_SOCKETS must be a whole number, not 'lots'"),
        ({"CHAT_MESSAGE_RATE": "-1"}, "chatserver: CHAT_MESSAGE_RATE must be a number above 0, not '-1'"),
    ],
    ids=[
        "redis-no-scheme",
        "mongodb-no-scheme",
        "env-typo",
        "short-secret",
        "not-a-number",
        "negative-rate",
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable_and_exit_1(env: dict[str, str], line: str) -> None:
    for command in (["--port", str(free_port())], ["token", "--player-id", "p1"], ["settings"]):
        assert one_line_refusal(1, *command, **env) == line


def test_serving_on_the_development_secret_with_backends_is_refused_but_membership_runs() -> None:
    backends = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "MONGODB_URL": "mongodb://127.0.0.1:27017"}
    assert one_line_refusal(1, "--port", str(free_port()), **backends) == (
        "chatserver: REDIS_URL and MONGODB_URL set but JWT_SECRET is not: set JWT_SECRET, or "
        "CHAT_ENV=development to run on the public development secret"
    )
    published = run_cli("membership", "leave", "--player-id", "p1", "--clan-id", "c1", env=clean_env(**backends))
    assert published.stderr.startswith("chatserver membership: Redis publish failed"), "it tried: nothing listens"


def test_a_port_in_use_is_one_line_before_anything_starts(embedded_server: ServerProcess) -> None:
    refusal = one_line_refusal(1, "--port", str(embedded_server.port), JWT_SECRET=CLI_SECRET)
    assert refusal == f"chatserver: cannot listen on 127.0.0.1:{embedded_server.port}: address already in use"


def test_a_host_that_does_not_resolve_is_one_line() -> None:
    port = free_port()
    refusal = one_line_refusal(1, "--host", "no-such-host.invalid", "--port", str(port), JWT_SECRET=CLI_SECRET)
    assert refusal.startswith(f"chatserver: cannot listen on no-such-host.invalid:{port}: ")


# --- backends that do not answer at start-up ---------------------------------------------------------


def test_mongodb_not_answering_ends_the_server_with_one_error_line_and_no_traceback(tmp_path: Path) -> None:
    dead = free_port()
    url = f"mongodb://127.0.0.1:{dead}/?serverSelectionTimeoutMS=300"
    server = ServerProcess(env={"MONGODB_URL": url, "CHAT_PLAYERS_FROM_DB": "false"})
    with pytest.raises(ProcessError, match="exited with status 3"):
        server.start(tmp_path)

    assert "Traceback" not in server.log()
    errors = [e["message"] for e in log_entries(server) if e["level"] == "ERROR"]
    assert errors == [
        f"cannot start: MongoDB at {url} did not answer "
        f"(127.0.0.1:{dead}: [Errno 111] Connect call failed ('127.0.0.1', {dead}))",
        "Application startup failed. Exiting.",
    ]


def test_redis_not_answering_is_said_once_at_start_and_the_server_serves_not_ready(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")

    assert httpx.get(f"{server.http_url}/readyz", timeout=5).status_code == 503
    errors = [e for e in log_entries(server) if e["level"] == "ERROR"]
    assert [(e["logger"], e["message"]) for e in errors] == [
        (
            "chatserver.services",
            f"Redis at {server.env['REDIS_URL']} does not answer: serving anyway with /readyz 503 and live "
            "delivery off; the subscriber reconnects with backoff (logged at each attempt) until it does",
        )
    ]


def test_a_short_development_secret_is_one_json_warning_not_pyjwt_text(server_factory: ServerFactory) -> None:
    server = server_factory(JWT_SECRET="short")
    minted = run_cli("token", "--player-id", "p1", env=clean_env(JWT_SECRET="short"))
    assert (minted.returncode, minted.stderr) == (0, "")
    headers = {"Authorization": f"Bearer {minted.stdout.strip()}"}
    assert httpx.get(f"{server.http_url}/chat/history?type=global", headers=headers, timeout=5).status_code == 200

    assert [line for line in server.log().splitlines() if not line.startswith("{")] == []
    warnings = [e["message"] for e in log_entries(server) if e["level"] == "WARNING"]
    assert "JWT_SECRET is 5 bytes: production refuses fewer than 32 for HS256" in warnings


# --- stopping -------------------------------------------------------------------------------------------


def test_ctrl_c_stops_the_server_quietly_with_exit_130(tmp_path: Path) -> None:
    server = ServerProcess().start(tmp_path)
    assert server.process is not None
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(timeout=PROCESS_TIMEOUT) == 130
    assert "Traceback" not in server.log() and "KeyboardInterrupt" not in server.log()


# --- the reference client ----------------------------------------------------------------------------------


def test_client_against_a_closed_port_gives_up_with_one_line() -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws/chat"
    refusal = one_line_refusal(1, "client", "--url", url, "--token", "t")
    assert (
        refusal == f"chatserver client: cannot connect to {url}: [Errno 111] Connect call failed ('127.0.0.1', {port})"
    )


def test_client_with_a_refused_token_says_why_in_words(embedded_server: ServerProcess) -> None:
    refusal = one_line_refusal(1, "client", "--url", embedded_server.ws_url, "--token", "not-a-jwt")
    assert (
        refusal
        == "chatserver client: handshake refused with HTTP 401: AUTHENTICATION_FAILED: The access token is invalid"
    )


@pytest.fixture
def client_process(embedded_server: ServerProcess) -> Iterator[subprocess.Popen[str]]:
    from tests.support.harness import TEST_SECRET

    minted = run_cli("token", "--player-id", "p-client", env=clean_env(JWT_SECRET=TEST_SECRET))
    process = subprocess.Popen(
        [*chatserver_command(), "client", "--url", embedded_server.ws_url, "--token", minted.stdout.strip()],
        env=clean_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_client_says_ready_and_stops_quietly_on_ctrl_c(
    client_process: subprocess.Popen[str], embedded_server: ServerProcess
) -> None:
    assert client_process.stderr is not None
    assert client_process.stderr.readline() == f"chatserver client: ready on {embedded_server.ws_url}\n"
    client_process.send_signal(signal.SIGINT)
    stdout, stderr = client_process.communicate(timeout=PROCESS_TIMEOUT)
    assert (client_process.returncode, stdout, stderr) == (130, "", "")


# --- membership -------------------------------------------------------------------------------------------


def test_membership_url_is_used_even_when_redis_url_is_set(server_factory: ServerFactory) -> None:
    server = server_factory(CHAT_INTERNAL_TOKEN="internal-token-for-the-cli-test")
    env = clean_env(
        JWT_SECRET=CLI_SECRET,
        CHAT_INTERNAL_TOKEN="internal-token-for-the-cli-test",
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens: publishing there would fail
    )
    result = run_cli("membership", "leave", "--player-id", "p1", "--clan-id", "c1", "--url", server.http_url, env=env)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == '{"player_id":"p1","action":"leave","clan_id":"c1"}\n'


def test_membership_url_without_the_internal_token_is_one_line(embedded_server: ServerProcess) -> None:
    refusal = one_line_refusal(
        1, "membership", "join", "--player-id", "p1", "--clan-id", "c1", "--url", embedded_server.http_url
    )
    assert refusal == "chatserver membership: --url needs CHAT_INTERNAL_TOKEN, the token the server was started with"


def test_membership_url_that_nobody_answers_is_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    refusal = one_line_refusal(
        1, "membership", "join", "--player-id", "p1", "--clan-id", "c1", "--url", url, CHAT_INTERNAL_TOKEN="t"
    )
    assert refusal == f"chatserver membership: cannot reach {url}: [Errno 111] Connection refused"


# --- help and settings ------------------------------------------------------------------------------------


def test_help_lists_each_option_with_its_default_and_points_to_the_settings() -> None:
    top = run_cli("--help", env=clean_env())
    assert top.returncode == 0
    for expected in (
        "--port PORT",
        "(default: 8080)",
        "(default: 127.0.0.1)",
        "(default: info)",
        "chatserver settings",
    ):
        assert expected in top.stdout
    for command in ("serve", "token", "membership", "settings", "client"):
        assert f"    {command} " in top.stdout
    token = run_cli("token", "--help", env=clean_env())
    assert "(default: 2592000)" in token.stdout and "--avatar AVATAR" in token.stdout


def test_version_prints_the_package_version() -> None:
    from importlib.metadata import version

    result = run_cli("--version", env=clean_env())
    assert (result.returncode, result.stdout, result.stderr) == (0, f"chatserver {version('altzone-chatserver')}\n", "")


def test_settings_prints_what_is_in_effect_with_secrets_masked() -> None:
    result = run_cli(
        "settings",
        env=clean_env(JWT_SECRET=CLI_SECRET, REDIS_URL="redis://:hunter2@127.0.0.1:6379/0", CHAT_MESSAGE_BURST="3"),
    )
    assert (result.returncode, result.stderr) == (0, "")
    lines = {line.split("=", 1)[0]: line for line in result.stdout.splitlines()}
    assert lines["JWT_SECRET"].split() == [f"JWT_SECRET=********({len(CLI_SECRET)}", "bytes)", "#", "set"]
    assert lines["REDIS_URL"].split() == ["REDIS_URL=redis://:****@127.0.0.1:6379/0", "#", "set"]
    assert lines["CHAT_MESSAGE_BURST"].split() == ["CHAT_MESSAGE_BURST=3", "#", "set"]
    assert lines["CHAT_MESSAGE_RATE"].split() == ["CHAT_MESSAGE_RATE=2", "#", "default"]
    assert CLI_SECRET not in result.stdout and "hunter2" not in result.stdout


def test_settings_names_misspelt_and_deprecated_variables_on_stderr() -> None:
    result = run_cli("settings", env=clean_env(CHAT_MAX_SOCKET="3", CHAT_ENVELOPE="wrapped"))
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "chatserver settings: CHAT_MAX_SOCKET is not a setting and is ignored: did you mean CHAT_MAX_SOCKETS?",
        "chatserver settings: CHAT_ENVELOPE is deprecated: use CHAT_DIALECT=game",
    ]
    assert "CHAT_DIALECT=game" in result.stdout


def test_settings_piped_into_head_stops_quietly() -> None:
    shown = subprocess.run(
        ["bash", "-c", f"{' '.join(chatserver_command())} settings | head -1"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )
    assert (shown.stdout.split()[0], shown.stderr) == ("JWT_SECRET=(the", "")


def test_settings_markdown_is_the_readme_table() -> None:
    result = run_cli("settings", "--markdown", env=clean_env())
    assert (result.returncode, result.stdout) == (0, markdown_table())


def without_site_packages(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -S -m module``: this interpreter with no installed packages, only the tree itself."""
    return subprocess.run(
        [sys.executable, "-S", "-m", module, *args],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )


def test_python_without_the_dependencies_is_one_line_saying_to_run_setup() -> None:
    result = without_site_packages("chatserver", "--help")  # as Debian's own python3 outside .venv
    assert (result.returncode, result.stdout) == (1, "")
    missing, _, rest = result.stderr.removeprefix("chatserver: ").partition(" ")
    assert missing.isidentifier() and not missing.startswith("chatserver"), result.stderr
    assert rest == f"is not installed for {sys.executable}: run scripts/setup, then .venv/bin/chatserver\n"


# --- the benchmarks ------------------------------------------------------------------------------------------


def test_bench_without_its_extra_is_one_line() -> None:
    result = without_site_packages("bench", "fanout", "--quick")  # as an install without [bench]
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "python3 -m bench needs the bench extra (matplotlib, pyinstrument, orjson, socketio not installed): "
        "python3 -m pip install -e '.[bench]'\n"
    )


def test_a_misspelt_setting_is_a_warning_at_start_naming_the_one_meant(server_factory: ServerFactory) -> None:
    server = server_factory(CHAT_MAX_SOCKET="3")
    warnings = [(e["logger"], e["message"]) for e in log_entries(server) if e["level"] == "WARNING"]
    assert (
        "chatserver.cli",
        "CHAT_MAX_SOCKET is not a setting and is ignored: did you mean CHAT_MAX_SOCKETS?",
    ) in warnings
