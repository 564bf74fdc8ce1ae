"""One typed settings object, built from the environment once at start-up and passed down.

No other module reads ``os.environ``: tests and the CLI build a ``Settings`` directly or through
``Settings.from_env`` with a mapping of their own, so every knob is visible in one place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from chatserver.protocol.inbound import InboundRules
from chatserver.protocol.vocabulary import GAME_REACTIONS, MOODS, Dialect

DEV_JWT_SECRET = "altzone-chat-development-secret-do-not-use-in-production"


class SettingsError(ValueError):
    """A setting is malformed or unsafe; the message names the variable."""


@dataclass(frozen=True)
class Rate:
    """A token bucket: ``per_second`` tokens refill it up to ``burst``."""

    per_second: float
    burst: int


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told, with the defaults of the embedded single-machine setup."""

    jwt_secret: str = DEV_JWT_SECRET
    jwt_algorithm: str = "HS256"
    environment: str = "development"
    mongodb_url: str | None = None
    mongodb_db: str = "altzone"
    redis_url: str | None = None
    redis_prefix: str = "chat:"
    root_path: str = ""
    dialect: Dialect = Dialect.WIKI
    feelings: tuple[str, ...] = ()
    reactions: tuple[str, ...] = ()
    content_max_chars: int = 256
    feeling_max_chars: int = 32
    frame_max_bytes: int = 8 * 1024
    transport_max_bytes: int = 64 * 1024
    outbound_queue_frames: int = 1024
    socket_send_buffer_bytes: int | None = None
    memory_max_messages: int = 200_000
    history_default_limit: int = 20
    history_max_limit: int = 50
    internal_token: str | None = None
    players_from_database: bool = field(default=False)
    drain_seconds: int = 20
    message_rate: Rate = Rate(2.0, 10)
    reaction_rate: Rate = Rate(5.0, 20)
    history_rate: Rate = Rate(5.0, 20)
    connect_rate: Rate = Rate(0.5, 20)
    max_sockets_per_player: int = 5
    allowed_origins: tuple[str, ...] = ()
    resume_limit: int = 300
    max_sockets: int = 20_000
    ping_interval_seconds: float = 20.0
    ping_timeout_seconds: float = 20.0
    deprecations: tuple[str, ...] = ()
    head_max_bytes: int = 8 * 1024
    head_timeout_seconds: int = 10
    max_pending_heads: int = 4096
    clan_ledger_seconds: int = 30 * 24 * 3600
    console: bool | None = None

    @property
    def console_enabled(self) -> bool:
        """``CHAT_CONSOLE`` if set, else on everywhere but production."""
        return self.console if self.console is not None else not self.is_production

    @property
    def mints_console_tokens(self) -> bool:
        """The console may sign tokens from a name only in development: anyone could claim any player."""
        return self.console_enabled and self.environment == "development"

    @property
    def uses_dev_secret(self) -> bool:
        """True while tokens are signed with the public development secret."""
        return self.jwt_secret == DEV_JWT_SECRET

    @property
    def inbound_rules(self) -> InboundRules:
        """What a client frame must satisfy here, for the protocol layer."""
        return InboundRules(
            self.frame_max_bytes, self.content_max_chars, self.feeling_max_chars, self.feelings, self.reactions
        )

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the documented variables (see README's configuration table) from ``env``."""
        env = os.environ if env is None else env
        mongodb_url = _text(env, "MONGODB_URL")
        dialect, deprecations = _dialect(env)
        game = dialect is Dialect.GAME
        settings = cls(
            jwt_secret=_text(env, "JWT_SECRET") or DEV_JWT_SECRET,
            jwt_algorithm=_text(env, "JWT_ALGORITHM") or "HS256",
            environment=(_text(env, "CHAT_ENV") or "development").lower(),
            mongodb_url=mongodb_url,
            mongodb_db=_text(env, "MONGODB_DB") or "altzone",
            redis_url=_text(env, "REDIS_URL"),
            redis_prefix=_text(env, "CHAT_REDIS_PREFIX") or "chat:",
            root_path=_root_path(_text(env, "CHAT_ROOT_PATH") or ""),
            dialect=dialect,
            feelings=_list(env, "CHAT_FEELINGS", MOODS if game else ()),
            reactions=_list(env, "CHAT_REACTIONS", GAME_REACTIONS if game else ()),
            content_max_chars=_int(env, "CHAT_CONTENT_MAX_CHARS", 256),
            feeling_max_chars=_int(env, "CHAT_FEELING_MAX_CHARS", 32),
            frame_max_bytes=_int(env, "CHAT_FRAME_MAX_BYTES", 8 * 1024),
            transport_max_bytes=_int(env, "CHAT_TRANSPORT_MAX_BYTES", 64 * 1024),
            outbound_queue_frames=_int(env, "CHAT_OUTBOUND_QUEUE_FRAMES", 1024),
            socket_send_buffer_bytes=_optional_int(env, "CHAT_SOCKET_SEND_BUFFER_BYTES"),
            memory_max_messages=_int(env, "CHAT_MEMORY_MAX_MESSAGES", 200_000),
            internal_token=_text(env, "CHAT_INTERNAL_TOKEN"),
            players_from_database=_bool(env, "CHAT_PLAYERS_FROM_DB", default=mongodb_url is not None),
            drain_seconds=_int(env, "CHAT_DRAIN_SECONDS", 20),
            message_rate=_rate(env, "CHAT_MESSAGE", Rate(2.0, 10)),
            reaction_rate=_rate(env, "CHAT_REACTION", Rate(5.0, 20)),
            history_rate=_rate(env, "CHAT_HISTORY", Rate(5.0, 20)),
            connect_rate=_rate(env, "CHAT_CONNECT", Rate(0.5, 20)),
            max_sockets_per_player=_int(env, "CHAT_MAX_SOCKETS_PER_PLAYER", 5),
            allowed_origins=_list(env, "CHAT_ALLOWED_ORIGINS"),
            resume_limit=_int(env, "CHAT_RESUME_LIMIT", 300),
            max_sockets=_int(env, "CHAT_MAX_SOCKETS", 20_000),
            ping_interval_seconds=_int(env, "CHAT_PING_INTERVAL_SECONDS", 20),
            ping_timeout_seconds=_int(env, "CHAT_PING_TIMEOUT_SECONDS", 20),
            deprecations=deprecations,
            head_max_bytes=_int(env, "CHAT_HEAD_MAX_BYTES", 8 * 1024),
            head_timeout_seconds=_int(env, "CHAT_HEAD_TIMEOUT_SECONDS", 10),
            max_pending_heads=_int(env, "CHAT_MAX_PENDING_HEADS", 4096),
            clan_ledger_seconds=_int(env, "CHAT_CLAN_LEDGER_SECONDS", 30 * 24 * 3600),
            console=_optional_bool(env, "CHAT_CONSOLE"),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse combinations that would silently misbehave in production."""
        if self.is_production and self.uses_dev_secret:
            raise SettingsError("CHAT_ENV=production needs JWT_SECRET: the development secret is public")
        if self.jwt_algorithm not in ("HS256", "HS384", "HS512"):
            raise SettingsError(f"JWT_ALGORITHM must be HS256, HS384 or HS512, not {self.jwt_algorithm!r}")
        if self.players_from_database and not self.mongodb_url:
            raise SettingsError("CHAT_PLAYERS_FROM_DB needs MONGODB_URL")
        if self.drain_seconds < 5:
            raise SettingsError("CHAT_DRAIN_SECONDS must be at least 5: polite closes, cuts, then uvicorn's shutdown")
        if not 1024 <= self.head_max_bytes <= 64 * 1024:
            raise SettingsError("CHAT_HEAD_MAX_BYTES must be between 1024 and 65536 (nginx's default is 8192)")
        if self.frame_max_bytes > self.transport_max_bytes:
            raise SettingsError("CHAT_FRAME_MAX_BYTES must not exceed CHAT_TRANSPORT_MAX_BYTES")


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise SettingsError(f"{name} must be at least 1, not {value}")
    return value


def _list(env: Mapping[str, str], name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped; ``default`` when the variable is unset."""
    raw = _text(env, name)
    if raw is None:
        return default
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _rate(env: Mapping[str, str], prefix: str, default: Rate) -> Rate:
    """``<prefix>_RATE`` (tokens a second, a positive number) and ``<prefix>_BURST`` (bucket size)."""
    raw = _text(env, f"{prefix}_RATE")
    try:
        per_second = default.per_second if raw is None else float(raw)
    except ValueError:
        raise SettingsError(f"{prefix}_RATE must be a number, not {raw!r}") from None
    if not per_second > 0:
        raise SettingsError(f"{prefix}_RATE must be above 0, not {raw!r}")
    return Rate(per_second, _int(env, f"{prefix}_BURST", default.burst))


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    return None if _text(env, name) is None else _int(env, name, 0)


def _bool(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = _text(env, name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def _dialect(env: Mapping[str, str]) -> tuple[Dialect, tuple[str, ...]]:
    """``CHAT_DIALECT``, or the superseded ``CHAT_ENVELOPE`` (``wrapped`` meant the game), with its deprecation."""
    raw = _text(env, "CHAT_DIALECT")
    if raw is not None:
        try:
            return Dialect(raw.lower()), ()
        except ValueError:
            raise SettingsError(f"CHAT_DIALECT must be 'wiki' or 'game', not {raw!r}") from None
    envelope = _text(env, "CHAT_ENVELOPE")
    if envelope is None:
        return Dialect.WIKI, ()
    by_envelope = {"plain": Dialect.WIKI, "wrapped": Dialect.GAME}
    dialect = by_envelope.get(envelope.lower())
    if dialect is None:
        raise SettingsError(f"CHAT_ENVELOPE must be 'plain' or 'wrapped', not {envelope!r}")
    return dialect, (f"CHAT_ENVELOPE is deprecated: use CHAT_DIALECT={dialect.value}",)


def _optional_bool(env: Mapping[str, str], name: str) -> bool | None:
    return None if _text(env, name) is None else _bool(env, name, default=False)


def _root_path(raw: str) -> str:
    """Normalise ``api/`` or ``/api/`` to ``/api`` so routes can be mounted under it."""
    stripped = raw.strip("/")
    return f"/{stripped}" if stripped else ""
