"""One typed settings object, built from the environment once at start-up and passed down.

Each setting is declared once, as a field of ``Settings``: its default and its environment variable
with parser and help text (``chatserver.variables``). ``from_env``, ``chatserver settings`` and the
README's configuration table are all read off those fields. No other module reads ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from chatserver.protocol.inbound import InboundRules
from chatserver.protocol.vocabulary import GAME_REACTIONS, MOODS, RESPONSE_TYPES, Dialect
from chatserver.variables import (
    HMAC_MIN_BYTES,
    Rate,
    RateVariables,
    SettingsError,
    Told,
    Variable,
    algorithm,
    boolean,
    comma_list,
    database_name,
    duration_or_none,
    hidden,
    mask_url,
    member_of,
    origins,
    read_text,
    root_path,
    setting,
    text,
    url,
    whole_number,
)

DEV_JWT_SECRET = "altzone-chat-development-secret-do-not-use-in-production"
GAME_RETENTION = timedelta(days=3)
"""The game backend's own policy: a TTL index on ``ChatMessage.createdAt`` that expires messages after 3 days."""
EVENTS_MAXLEN = 300_000
"""About a day of a busy game (10,000 players making 30 changes each); ~80 MiB in Redis at ~275 bytes an entry."""

__all__ = [  # what the rest of the package imports from here (some of it defined in chatserver.variables)
    "DEV_JWT_SECRET",
    "BlocklistAction",
    "HMAC_MIN_BYTES",
    "Environment",
    "Rate",
    "Settings",
    "SettingsError",
    "declared",
    "markdown_table",
    "mask_url",
    "misspelt",
]


class Environment(StrEnum):
    """``CHAT_ENV``: production refuses unsafe settings; unset behaves as development but is not explicit."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


def readable_file(name: str, raw: str) -> str:
    """A path to a file this process can read (checked once at start-up; later reloads keep what they had)."""
    if not (os.path.isfile(raw) and os.access(raw, os.R_OK)):
        raise SettingsError(f"{name} must be a readable file, not {raw!r}")
    return raw


class BlocklistAction(StrEnum):
    """``CHAT_BLOCKLIST_ACTION``: what the word filter does with a message holding a blocked term."""

    MASK = "mask"
    REFUSE = "refuse"


@dataclass(frozen=True)
class DialectVariables:
    """``CHAT_DIALECT``, or the superseded ``CHAT_ENVELOPE`` (``wrapped`` meant the game), which is deprecated."""

    help: str
    shown_default: str | None = None
    default_from: Callable[[Mapping[str, Any]], Dialect] | None = None
    names: tuple[str, ...] = ("CHAT_DIALECT", "CHAT_ENVELOPE")

    def read(self, env: Mapping[str, str], default: Dialect) -> Dialect:
        raw = read_text(env, "CHAT_DIALECT")
        if raw is not None:
            return member_of(Dialect)("CHAT_DIALECT", raw)
        envelope = read_text(env, "CHAT_ENVELOPE")
        if envelope is None:
            return default
        by_envelope = {"plain": Dialect.WIKI, "wrapped": Dialect.GAME}
        if envelope.lower() not in by_envelope:
            raise SettingsError(f"CHAT_ENVELOPE must be plain or wrapped, not {envelope!r}")
        return by_envelope[envelope.lower()]

    def shown(self, value: Dialect) -> list[tuple[str, str]]:
        return [("CHAT_DIALECT", value.value)]

    def deprecation(self, env: Mapping[str, str]) -> str | None:
        if read_text(env, "CHAT_DIALECT") is not None or read_text(env, "CHAT_ENVELOPE") is None:
            return None
        return f"CHAT_ENVELOPE is deprecated: use CHAT_DIALECT={self.read(env, Dialect.WIKI).value}"


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told, with the defaults of the embedded single-machine setup."""

    jwt_secret: str = setting(
        DEV_JWT_SECRET,
        Variable(
            "JWT_SECRET",
            text,
            "HMAC secret shared with the game backend; at least 32 bytes (HS256) in production",
            shown_default="development secret (warns)",
            masked=lambda value: "(the public development secret)" if value == DEV_JWT_SECRET else hidden(value),
        ),
    )
    jwt_algorithm: str = setting(
        "HS256", Variable("JWT_ALGORITHM", algorithm, "pinned algorithm: `HS256`, `HS384` or `HS512`")
    )
    environment: Environment | None = setting(
        None,
        Variable(
            "CHAT_ENV",
            member_of(Environment),
            "`development` or `production` (anything else is refused); production refuses the development "
            "secret and short secrets; unset is development, but the server then refuses the development "
            "secret once `REDIS_URL` or `MONGODB_URL` is set",
            shown_default="unset (development)",
        ),
    )
    mongodb_url: str | None = setting(
        None,
        Variable(
            "MONGODB_URL",
            url("mongodb", "mongodb+srv"),
            "MongoDB for durable history (`ChatMessage` collection)",
            shown_default="unset: in-process store",
            masked=mask_url,
        ),
    )
    mongodb_db: str = setting("altzone", Variable("MONGODB_DB", database_name, "database name"))
    players_from_database: bool = setting(
        False,
        Variable(
            "CHAT_PLAYERS_FROM_DB",
            boolean,
            "read name/avatar/clan from the game's `Player` collection instead of token claims",
            shown_default="true when `MONGODB_URL` is set",
            default_from=lambda values: values["mongodb_url"] is not None,
        ),
    )
    redis_url: str | None = setting(
        None,
        Variable(
            "REDIS_URL",
            url("redis", "rediss", "unix"),
            "Redis for fan-out between replicas: one Redis, or any node of a Redis Cluster (found by itself; see "
            "[Choosing Redis](#choosing-redis-one-redis-sentinel-or-a-cluster))",
            shown_default="unset: in-process broker",
            masked=mask_url,
        ),
    )
    redis_prefix: str = setting("chat:", Variable("CHAT_REDIS_PREFIX", text, "prefix of every Redis channel"))
    root_path: str = setting(
        "",
        Variable(
            "CHAT_ROOT_PATH",
            root_path,
            "extra prefix for every route, e.g. `/api` (routes also stay at `/`)",
            shown_default="none",
        ),
    )
    dialect: Dialect = setting(
        Dialect.WIKI,
        DialectVariables(
            "dialect of sockets that name none: `wiki`, or `game` for a game deployment (the shipped client names "
            "none); `CHAT_ENVELOPE` is its deprecated alias (`wrapped` is `game`, `plain` is `wiki`; logs a warning)",
            shown_default="`wiki`",
        ),
    )
    feelings: tuple[str, ...] = setting(
        (),
        Variable(
            "CHAT_FEELINGS",
            comma_list,
            "allow-list, matched case-insensitively, stored in the list's spelling",
            shown_default="none (free label); the Mood names with `CHAT_DIALECT=game`",
            default_from=lambda values: MOODS if values["dialect"] is Dialect.GAME else (),
        ),
    )
    reactions: tuple[str, ...] = setting(
        (),
        Variable(
            "CHAT_REACTIONS",
            comma_list,
            "allow-list of reactions; a Unicode emoji is mapped to its Mood when that is listed",
            shown_default="none (one emoji or a Mood name); `Happy,Sad,Love,Wink,Angry` with `CHAT_DIALECT=game`",
            default_from=lambda values: GAME_REACTIONS if values["dialect"] is Dialect.GAME else (),
        ),
    )
    response_types: tuple[str, ...] = setting(
        (),
        Variable(
            "CHAT_RESPONSE_TYPES",
            comma_list,
            "allow-list of quick responses (`responseType`), matched case-insensitively, stored in the list's spelling",
            shown_default="none (any label up to 64 characters); the client's 18 `ResponseType` names with "
            "`CHAT_DIALECT=game`",
            default_from=lambda values: RESPONSE_TYPES if values["dialect"] is Dialect.GAME else (),
        ),
    )
    content_max_chars: int = setting(
        256, Variable("CHAT_CONTENT_MAX_CHARS", whole_number, "message length limit in code points")
    )
    feeling_max_chars: int = setting(
        32, Variable("CHAT_FEELING_MAX_CHARS", whole_number, "free feeling label length limit")
    )
    frame_max_bytes: int = setting(
        8 * 1024, Variable("CHAT_FRAME_MAX_BYTES", whole_number, 'larger frames get `{"error": "Frame too large"}`')
    )
    transport_max_bytes: int = setting(
        64 * 1024, Variable("CHAT_TRANSPORT_MAX_BYTES", whole_number, "larger frames close the socket with 1009")
    )
    outbound_queue_frames: int = setting(
        1024,
        Variable(
            "CHAT_OUTBOUND_QUEUE_FRAMES",
            whole_number,
            "per-socket send queue; a client that lets it fill is closed with 1008",
        ),
    )
    memory_max_messages: int = setting(
        200_000,
        Variable("CHAT_MEMORY_MAX_MESSAGES", whole_number, "bound of the in-process store (oldest dropped)"),
    )
    internal_token: str | None = setting(
        None,
        Variable(
            "CHAT_INTERNAL_TOKEN",
            text,
            "service token for `POST /internal/membership`",
            shown_default="unset: endpoint disabled",
            masked=hidden,
        ),
    )
    message_rate: Rate = setting(
        Rate(2.0, 10),
        RateVariables(
            "CHAT_MESSAGE",
            "per-player token bucket for messages: tokens a second (fractions allowed), bucket size; shared by "
            "all replicas through Redis",
        ),
    )
    reaction_rate: Rate = setting(Rate(5.0, 20), RateVariables("CHAT_REACTION", "the same for reactions"))
    history_rate: Rate = setting(
        Rate(5.0, 20),
        RateVariables(
            "CHAT_HISTORY",
            "the same for `GET /chat/history` (429 beyond) and for each room a resume replays (not replayed beyond)",
        ),
    )
    connect_rate: Rate = setting(
        Rate(0.5, 20),
        RateVariables(
            "CHAT_CONNECT",
            "the same for opening sockets (the handshake is refused with 429 beyond), so a reconnect loop cannot "
            "keep a replica busy",
        ),
    )
    admission_max_lag_ms: int = setting(
        1000,
        Variable(
            "CHAT_ADMISSION_MAX_LAG_MS",
            whole_number,
            "new sockets are refused with 503 while this worker's event loop runs this many ms behind (a reconnect "
            "storm), before the token check and a resume's reads, so clients back off instead of timing out; 0: never",
        ),
    )
    max_sockets_per_player: int = setting(
        5,
        Variable(
            "CHAT_MAX_SOCKETS_PER_PLAYER",
            whole_number,
            "sockets one player may hold on one worker; the oldest is closed with 1008 beyond it (the newest "
            "device is the one in the player's hand)",
        ),
    )
    max_sockets: int = setting(
        20_000, Variable("CHAT_MAX_SOCKETS", whole_number, "sockets one worker holds; more are closed with 1013")
    )
    allowed_origins: tuple[str, ...] = setting(
        (),
        Variable(
            "CHAT_ALLOWED_ORIGINS",
            origins,
            "comma-separated browser origins allowed to connect; game clients send no `Origin` and are always let in",
            shown_default="none: any",
        ),
    )
    resume_limit: int = setting(
        300,
        Variable(
            "CHAT_RESUME_LIMIT",
            whole_number,
            "changes per room replayed on a resume (`recovered: false` beyond)",
        ),
    )
    drain_seconds: int = setting(
        20,
        Variable(
            "CHAT_DRAIN_SECONDS",
            whole_number,
            "on SIGTERM: `/readyz` 503, new sockets refused, sockets closed with 1012, exit within this (at least 5)",
        ),
    )
    ping_interval_seconds: float = setting(
        20.0, Variable("CHAT_PING_INTERVAL_SECONDS", whole_number, "seconds between the server's pings")
    )
    ping_timeout_seconds: float = setting(
        20.0,
        Variable(
            "CHAT_PING_TIMEOUT_SECONDS",
            whole_number,
            "a client that does not answer a ping within this is dropped",
        ),
    )
    socket_send_buffer_bytes: int | None = setting(
        None,
        Variable(
            "CHAT_SOCKET_SEND_BUFFER_BYTES",
            whole_number,
            "caps each socket's kernel send buffer, so a stuck reader fills its queue (and is cut) sooner",
            shown_default="kernel default",
        ),
    )
    head_max_bytes: int = setting(
        8 * 1024,
        Variable(
            "CHAT_HEAD_MAX_BYTES",
            whole_number,
            "longest request head (request line and headers, as nginx's default); longer gets 414 or 431 and a "
            "close (1024-65536)",
        ),
    )
    head_timeout_seconds: int = setting(
        10,
        Variable(
            "CHAT_HEAD_TIMEOUT_SECONDS",
            whole_number,
            "a connection whose request head is not complete this long after it opened (or after the head's "
            "first byte) gets 408 and a close",
        ),
    )
    max_pending_heads: int = setting(
        4096,
        Variable(
            "CHAT_MAX_PENDING_HEADS",
            whole_number,
            "connections one worker lets send their request head at once (about 15 KiB each at most); more get "
            "503 and a close",
        ),
    )
    clan_ledger_seconds: int = setting(
        30 * 24 * 3600,
        Variable(
            "CHAT_CLAN_LEDGER_SECONDS",
            whole_number,
            "claims mode: how long membership changes void older tokens' `clan_id` claims (at least your tokens' "
            "lifetime)",
            shown_default="`2592000` (30 days)",
        ),
    )
    console: bool | None = setting(
        None,
        Variable(
            "CHAT_CONSOLE",
            boolean,
            "serves the browser console at `/console` (development tokens only in development: with "
            "`CHAT_ENV=development`, or with no setting at all)",
            shown_default="on, off with `CHAT_ENV=production`",
        ),
    )
    blocklist_file: str | None = setting(
        None,
        Variable(
            "CHAT_BLOCKLIST_FILE",
            readable_file,
            "word filter list, one term a line (see [Moderation](#moderation)); re-read on SIGHUP or when it changes",
            shown_default="none: no filter",
        ),
    )
    blocklist_action: BlocklistAction = setting(
        BlocklistAction.MASK,
        Variable(
            "CHAT_BLOCKLIST_ACTION",
            member_of(BlocklistAction),
            "`mask` stars out each blocked stretch; `refuse` answers `VALIDATION` on `content` and stores nothing",
        ),
    )
    retention: timedelta | None = setting(
        None,
        Variable(
            "CHAT_RETENTION",
            duration_or_none,
            "how long messages are kept: `3d`, `12h`, `2s`, a sum such as `1d12h`, or `none`; see "
            "[Retention](#retention)",
            shown_default="none (`3d` with `CHAT_DIALECT=game`)",
            default_from=lambda values: GAME_RETENTION if values["dialect"] is Dialect.GAME else None,
        ),
    )
    events_maxlen: int = setting(
        EVENTS_MAXLEN,
        Variable(
            "CHAT_EVENTS_MAXLEN",
            whole_number,
            "approximate length of the `chat:events` stream (~275 bytes an entry); see "
            "[Events](#events-for-other-services)",
        ),
    )
    events_repair_seconds: int = setting(
        10,
        Variable(
            "CHAT_EVENTS_REPAIR_SECONDS",
            whole_number,
            "an event still in its outbox after this long is appended by the repair sweep",
        ),
    )
    history_default_limit: int = 20
    history_max_limit: int = 50
    deprecations: tuple[str, ...] = ()  # warnings for superseded variables still set, logged at start-up

    @property
    def uses_dev_secret(self) -> bool:
        """True while tokens are signed with the public development secret."""
        return self.jwt_secret == DEV_JWT_SECRET

    @property
    def inbound_rules(self) -> InboundRules:
        """What a client frame must satisfy here, for the protocol layer."""
        return InboundRules(
            self.frame_max_bytes,
            self.content_max_chars,
            self.feeling_max_chars,
            self.feelings,
            self.reactions,
            self.response_types,
        )

    @property
    def console_enabled(self) -> bool:
        """``CHAT_CONSOLE`` if set, else on everywhere but production."""
        return self.console if self.console is not None else not self.is_production

    @property
    def mints_console_tokens(self) -> bool:
        """The console may sign tokens from a name only in development: anyone could claim any player.

        Development is ``CHAT_ENV=development``, or no ``CHAT_ENV`` and no real backend (the embedded
        default); a deployment with Redis or MongoDB and a forgotten ``CHAT_ENV`` does not mint.
        """
        if not self.console_enabled or self.is_production:
            return False
        return self.environment is Environment.DEVELOPMENT or not (self.redis_url or self.mongodb_url)

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every declared variable from ``env`` (the process environment by default), then ``check``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for spec, variable in declared():
            default = spec.default if variable.default_from is None else variable.default_from(values)
            values[spec.name] = variable.read(env, default)
        deprecations = tuple(note for _, variable in declared() if (note := variable.deprecation(env)) is not None)
        settings = cls(**values, deprecations=deprecations)
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse combinations that would silently misbehave or be unsafe in production."""
        if self.is_production and self.uses_dev_secret:
            raise SettingsError("CHAT_ENV=production needs JWT_SECRET: the development secret is public")
        minimum = HMAC_MIN_BYTES[self.jwt_algorithm]
        if self.is_production and len(self.jwt_secret.encode()) < minimum:
            raise SettingsError(
                f"JWT_SECRET must be at least {minimum} bytes for {self.jwt_algorithm} in production, "
                f"not {len(self.jwt_secret.encode())} (e.g. openssl rand -hex 32)"
            )
        if self.players_from_database and not self.mongodb_url:
            raise SettingsError("CHAT_PLAYERS_FROM_DB needs MONGODB_URL")
        if self.drain_seconds < 5:
            raise SettingsError("CHAT_DRAIN_SECONDS must be at least 5: polite closes, cuts, then uvicorn's shutdown")
        if not 1024 <= self.head_max_bytes <= 64 * 1024:
            raise SettingsError("CHAT_HEAD_MAX_BYTES must be between 1024 and 65536 (nginx's default is 8192)")
        if self.frame_max_bytes > self.transport_max_bytes:
            raise SettingsError("CHAT_FRAME_MAX_BYTES must not exceed CHAT_TRANSPORT_MAX_BYTES")

    def check_serving(self) -> None:
        """Refuse to serve real backends on the public development secret unless development is explicit.

        Only serving: a command that signs nothing a server accepts (``membership``, ``settings``) runs anyway.
        """
        backends = [name for name, value in (("REDIS_URL", self.redis_url), ("MONGODB_URL", self.mongodb_url)) if value]
        if self.uses_dev_secret and backends and self.environment is None:
            raise SettingsError(
                f"{' and '.join(backends)} set but JWT_SECRET is not: set JWT_SECRET, or CHAT_ENV=development "
                "to run on the public development secret"
            )

    def shown(self, env: Mapping[str, str] | None = None) -> list[tuple[str, str, bool]]:
        """``(variable, value, set in env)`` for every variable, secrets and URL passwords masked."""
        env = os.environ if env is None else env
        return [
            (name, value, read_text(env, name) is not None)
            for spec, variable in declared()
            for name, value in variable.shown(getattr(self, spec.name))
        ]


def declared() -> Iterator[tuple[dataclasses.Field[Any], Told[Any]]]:
    """Every ``Settings`` field told by the environment, with its variable, in declaration order."""
    for spec in dataclasses.fields(Settings):
        if "variable" in spec.metadata:
            yield spec, spec.metadata["variable"]


def misspelt(env: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each variable in ``env`` that is not a setting but looks like one (a typo is ignored silently
    otherwise); unrelated variables, such as those Kubernetes adds for Services, are not close enough to name."""
    env = os.environ if env is None else env
    known = [name for _, variable in declared() for name in variable.names]
    warnings = []
    for name in sorted(env):
        if name in known or not name.startswith(("CHAT_", "JWT_", "REDIS_", "MONGODB_")):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
        if close:
            warnings.append(f"{name} is not a setting and is ignored: did you mean {close[0]}?")
    return warnings


def markdown_table() -> str:
    """The README's configuration table, produced from the declarations (``chatserver settings --markdown``)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for spec, variable in declared():
        names = ", ".join(f"`{name}`" for name in variable.names)
        if variable.shown_default is not None:
            default = variable.shown_default
        else:
            default = ", ".join(f"`{value}`" for _, value in variable.shown(spec.default))
        rows.append(f"| {names} | {default} | {variable.help} |")
    return "\n".join(rows) + "\n"
