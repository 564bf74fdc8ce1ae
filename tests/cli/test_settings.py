"""``Settings.from_env`` in-process: each declared variable is read, checked and shown from one declaration."""

from __future__ import annotations

import pytest

from chatserver.settings import (
    DEV_JWT_SECRET,
    Environment,
    Rate,
    Settings,
    SettingsError,
    declared,
    markdown_table,
    misspelt,
)

LONG_SECRET = "s" * 32
BACKENDS = {"REDIS_URL": "redis://127.0.0.1:6379/0", "MONGODB_URL": "mongodb://127.0.0.1:27017"}


def refusal(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)
    return str(refused.value)


def test_an_empty_environment_gives_exactly_the_defaults_code_gets_from_settings() -> None:
    assert Settings.from_env({}) == Settings()


def test_every_declared_variable_is_read_from_the_environment() -> None:
    names = [name for _, variable in declared() for name in variable.names]
    assert len(names) == len(set(names)), "each variable is declared once"
    settings = Settings.from_env(
        {
            "CHAT_MESSAGE_RATE": "0.5",
            "CHAT_MESSAGE_BURST": "3",
            "CHAT_ENV": "Production",
            "JWT_SECRET": LONG_SECRET,
            "CHAT_ROOT_PATH": "api/",
        }
    )
    assert settings.message_rate == Rate(0.5, 3)
    assert settings.environment is Environment.PRODUCTION and settings.root_path == "/api"


@pytest.mark.parametrize("value", ["prod", "staging", "dev"])
def test_an_unknown_chat_env_is_refused_not_run_as_development(value: str) -> None:
    assert refusal({"CHAT_ENV": value}) == f"CHAT_ENV must be development or production, not {value!r}"


def serving_refusal(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env).check_serving()
    return str(refused.value)


def test_serving_on_the_development_secret_is_refused_once_a_real_backend_is_configured() -> None:
    assert serving_refusal(BACKENDS) == (
        "REDIS_URL and MONGODB_URL set but JWT_SECRET is not: set JWT_SECRET, or CHAT_ENV=development "
        "to run on the public development secret"
    )
    assert serving_refusal({"REDIS_URL": BACKENDS["REDIS_URL"]}).startswith("REDIS_URL set but JWT_SECRET is not")
    Settings.from_env(BACKENDS)  # the settings themselves are fine for commands that sign nothing


def test_the_development_secret_with_a_backend_runs_when_development_is_explicit() -> None:
    settings = Settings.from_env({**BACKENDS, "CHAT_ENV": "development"})
    settings.check_serving()
    assert settings.uses_dev_secret and settings.environment is Environment.DEVELOPMENT


@pytest.mark.parametrize(("algorithm", "minimum"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_production_refuses_an_hmac_secret_shorter_than_its_hash(algorithm: str, minimum: int) -> None:
    env = {"CHAT_ENV": "production", "JWT_ALGORITHM": algorithm}
    assert refusal({**env, "JWT_SECRET": "a" * (minimum - 1)}) == (
        f"JWT_SECRET must be at least {minimum} bytes for {algorithm} in production, not {minimum - 1} "
        "(e.g. openssl rand -hex 32)"
    )
    assert Settings.from_env({**env, "JWT_SECRET": "a" * minimum}).is_production


def test_development_accepts_a_short_secret() -> None:
    assert Settings.from_env({"JWT_SECRET": "a"}).jwt_secret == "a"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"REDIS_URL": "localhost:6379"},
            "REDIS_URL must be a URL starting with redis://..., rediss://..., unix://...",
        ),
        (
            {"MONGODB_URL": "http://db:27017"},
            "MONGODB_URL must be a URL starting with mongodb://..., mongodb+srv://...",
        ),
        ({"CHAT_MAX_SOCKETS": "many"}, "CHAT_MAX_SOCKETS must be a whole number, not 'many'"),
        ({"CHAT_MAX_SOCKETS": "0"}, "CHAT_MAX_SOCKETS must be at least 1, not 0"),
        ({"CHAT_HISTORY_RATE": "fast"}, "CHAT_HISTORY_RATE must be a number, not 'fast'"),
        ({"CHAT_HISTORY_RATE": "inf"}, "CHAT_HISTORY_RATE must be a number above 0, not 'inf'"),
        ({"CHAT_PLAYERS_FROM_DB": "maybe"}, "CHAT_PLAYERS_FROM_DB must be true or false, not 'maybe'"),
        ({"CHAT_ENVELOPE": "boxed"}, "CHAT_ENVELOPE must be plain or wrapped, not 'boxed'"),
        ({"JWT_ALGORITHM": "RS256"}, "JWT_ALGORITHM must be HS256, HS384 or HS512, not 'RS256'"),
    ],
)
def test_a_malformed_value_is_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    assert refusal(env).startswith(message)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_URL": "redis://127.0.0.1:6379/abc"}, "REDIS_URL: the database 'abc' is not a number"),
        ({"REDIS_URL": "redis://127.0.0.1:port/0"}, "REDIS_URL: the port 'port' of '127.0.0.1' is not a port number"),
        ({"REDIS_URL": "redis://:pw@h:99999"}, "REDIS_URL: the port '99999' of 'h' is not a port number"),
        ({"REDIS_URL": "unix://"}, "REDIS_URL: no socket path"),
        ({"MONGODB_URL": "mongodb://"}, "MONGODB_URL: no host"),
        ({"MONGODB_URL": "mongodb://a:1,b:x/?replicaSet=rs0"}, "MONGODB_URL: the port 'x' of 'b' is not a port number"),
    ],
)
def test_a_url_the_client_library_would_trip_over_later_is_refused_now(env: dict[str, str], message: str) -> None:
    assert refusal(env).startswith(message)


@pytest.mark.parametrize(
    "env",
    [
        {"REDIS_URL": "redis://[::1]:6379/0"},
        {"REDIS_URL": "unix:///run/redis.sock"},
        {"REDIS_URL": "rediss://:pw@redis.example.com:6380"},
        {"MONGODB_URL": "mongodb://a:27017,b:27017,c/?replicaSet=rs0"},
        {"MONGODB_URL": "mongodb+srv://user:pw@cluster.example.com/altzone"},
    ],
)
def test_urls_as_operators_write_them_are_accepted(env: dict[str, str]) -> None:
    Settings.from_env({**env, "CHAT_ENV": "development", "CHAT_PLAYERS_FROM_DB": "false"})


def test_a_url_password_never_appears_in_the_refusal_or_the_shown_settings() -> None:
    assert "hunter2" not in refusal({"REDIS_URL": "http://:hunter2@redis:6379"})
    settings = Settings.from_env({"REDIS_URL": "redis://:hunter2@redis:6379/0", "JWT_SECRET": LONG_SECRET})
    shown = dict((name, value) for name, value, _ in settings.shown({}))
    assert shown["REDIS_URL"] == "redis://:****@redis:6379/0"
    assert shown["JWT_SECRET"] == f"********({len(LONG_SECRET)} bytes)"


def test_shown_settings_mark_what_the_environment_set() -> None:
    env = {"CHAT_MESSAGE_BURST": "3"}
    shown = {name: (value, told) for name, value, told in Settings.from_env(env).shown(env)}
    assert shown["CHAT_MESSAGE_BURST"] == ("3", True)
    assert shown["CHAT_MESSAGE_RATE"] == ("2", False)
    assert shown["JWT_SECRET"] == ("(the public development secret)", False)
    assert DEV_JWT_SECRET not in repr(shown)


def test_the_markdown_table_has_a_row_per_declaration() -> None:
    rows = markdown_table().splitlines()[2:]
    assert len(rows) == len(list(declared()))
    assert rows[0].startswith("| `JWT_SECRET` | development secret (warns) |")


# Every variable that is not free text refuses a value it cannot use, naming itself.
FREE_TEXT = {
    "JWT_SECRET",
    "CHAT_REDIS_PREFIX",
    "CHAT_ROOT_PATH",
    "CHAT_FEELINGS",
    "CHAT_REACTIONS",
    "CHAT_RESPONSE_TYPES",
    "CHAT_INTERNAL_TOKEN",
}


@pytest.mark.parametrize(
    "name", [name for _, variable in declared() for name in variable.names if name not in FREE_TEXT]
)
def test_every_setting_that_is_not_free_text_refuses_nonsense_naming_itself(name: str) -> None:
    assert refusal({name: "-1 nonsense"}).startswith(f"{name} must be" if name != "CHAT_ALLOWED_ORIGINS" else name)


def test_allowed_origins_must_be_origins_as_browsers_send_them() -> None:
    assert refusal({"CHAT_ALLOWED_ORIGINS": "https://altzone.fi,altzone.fi"}) == (
        "CHAT_ALLOWED_ORIGINS: 'altzone.fi' is not an origin such as https://game.example.com "
        "(scheme://host[:port], no path)"
    )
    assert refusal({"CHAT_ALLOWED_ORIGINS": "https://altzone.fi/"}).startswith(
        "CHAT_ALLOWED_ORIGINS: 'https://altzone.fi/'"
    )
    allowed = Settings.from_env({"CHAT_ALLOWED_ORIGINS": "https://Altzone.fi, http://localhost:3000"}).allowed_origins
    assert allowed == ("https://altzone.fi", "http://localhost:3000")


def test_a_misspelt_setting_is_named_with_the_one_meant_and_unrelated_variables_are_not() -> None:
    env = {"CHAT_MAX_SOCKET": "3", "REDIS_URI": "redis://r", "CHAT_CHATSERVER_SERVICE_HOST": "10.0.0.1", "HOME": "/"}
    assert misspelt(env) == [
        "CHAT_MAX_SOCKET is not a setting and is ignored: did you mean CHAT_MAX_SOCKETS?",
        "REDIS_URI is not a setting and is ignored: did you mean REDIS_URL?",
    ]


@pytest.mark.parametrize(
    ("env", "mints"),
    [
        ({}, True),
        ({"CHAT_ENV": "development", **BACKENDS}, True),
        ({"JWT_SECRET": LONG_SECRET, **BACKENDS}, False),
        ({"JWT_SECRET": LONG_SECRET, "REDIS_URL": BACKENDS["REDIS_URL"]}, False),
    ],
    ids=["embedded", "explicit-development", "backends-without-chat-env", "redis-without-chat-env"],
)
def test_the_console_mints_tokens_only_where_development_is_sure(env: dict[str, str], mints: bool) -> None:
    settings = Settings.from_env({**env, "CHAT_PLAYERS_FROM_DB": "false"} if "MONGODB_URL" in env else env)
    assert (settings.console_enabled, settings.mints_console_tokens) == (True, mints)
