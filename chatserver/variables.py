"""How one setting is told by the environment: its variable, the parser of its text, its help.

``chatserver.settings`` declares each ``Settings`` field with one of these; parsers raise
``SettingsError`` with a message that names the variable.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import SplitResult, urlsplit

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)
T_co = TypeVar("T_co", covariant=True)


class SettingsError(ValueError):
    """A setting is malformed or unsafe; the message names the variable."""


@dataclass(frozen=True)
class Rate:
    """A token bucket: ``per_second`` tokens refill it up to ``burst``."""

    per_second: float
    burst: int


# --- parsers: (variable name, stripped non-empty text) -> value, or SettingsError naming the variable ---


def text(name: str, raw: str) -> str:
    return raw


def whole_number(name: str, raw: str) -> int:
    """A whole number of at least 1 (every count, size and duration here is)."""
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise SettingsError(f"{name} must be at least 1, not {value}")
    return value


def boolean(name: str, raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def comma_list(name: str, raw: str) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def origins(name: str, raw: str) -> tuple[str, ...]:
    """Browser origins as the ``Origin`` header sends them: ``scheme://host[:port]``, no path, lower case."""
    listed = comma_list(name, raw)
    for origin in listed:
        if not re.fullmatch(r"https?://[^/\s]+", origin):
            raise SettingsError(
                f"{name}: {origin!r} is not an origin such as https://game.example.com (scheme://host[:port], no path)"
            )
    return tuple(origin.lower() for origin in listed)


def member_of(kind: type[E]) -> Callable[[str, str], E]:
    """One of the enum's values, case-insensitively (a typo such as ``prod`` is refused, never guessed)."""

    def parse(name: str, raw: str) -> E:
        try:
            return kind(raw.lower())
        except ValueError:
            raise SettingsError(f"{name} must be {_one_of(tuple(kind))}, not {raw!r}") from None

    return parse


def url(*schemes: str) -> Callable[[str, str], str]:
    """A URL with one of ``schemes`` (``localhost:6379`` alone would be read as a scheme named localhost)."""

    def parse(name: str, raw: str) -> str:
        scheme = raw.partition("://")[0].lower() if "://" in raw else ""
        if scheme not in schemes:
            examples = ", ".join(f"{s}://..." for s in schemes)
            raise SettingsError(f"{name} must be a URL starting with {examples}, not {mask_url(raw)!r}")
        problem = _address_problem(scheme, urlsplit(raw))
        if problem is not None:
            raise SettingsError(f"{name}: {problem} in {mask_url(raw)!r}")
        return raw

    return parse


def _address_problem(scheme: str, parts: SplitResult) -> str | None:
    """What the client library would trip over later, with a traceback: no host, a port or database not a number."""
    if scheme == "unix":
        return None if parts.path else "no socket path"
    hosts = parts.netloc.rpartition("@")[2]
    if not hosts:
        return "no host"
    for host in hosts.split(","):  # MongoDB lists a replica set's members
        address, colon, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if colon and not (port.isdigit() and 0 < int(port) < 65536):
            return f"the port {port!r} of {address or host!r} is not a port number"
    database = parts.path.strip("/")
    if scheme in ("redis", "rediss") and database and not database.isdigit():
        return f"the database {database!r} is not a number (Redis databases are 0, 1, ...)"
    return None


def database_name(name: str, raw: str) -> str:
    """A MongoDB database name: at most 63 bytes, none of ``/\\. "$`` (MongoDB refuses them only at start-up)."""
    if set(raw) & set('/\\. "$') or len(raw.encode()) > 63:
        raise SettingsError(f'{name} must be at most 63 bytes without any of / \\ . " $ or spaces, not {raw!r}')
    return raw


def root_path(name: str, raw: str) -> str:
    """Normalise ``api/`` or ``/api/`` to ``/api`` so routes can be mounted under it."""
    stripped = raw.strip("/")
    return f"/{stripped}" if stripped else ""


def algorithm(name: str, raw: str) -> str:
    if raw.upper() in HMAC_MIN_BYTES:
        return raw.upper()
    raise SettingsError(f"{name} must be {_one_of(tuple(HMAC_MIN_BYTES))}, not {raw!r}")


# RFC 7518 §3.2: an HMAC key at least as long as the hash output.
HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


def _one_of(allowed: tuple[str, ...]) -> str:
    return ", ".join(allowed[:-1]) + f" or {allowed[-1]}" if len(allowed) > 1 else allowed[0]


def hidden(value: str) -> str:
    """A secret as ``chatserver settings`` shows it: set, and how long (what a too-short one needs to know)."""
    return f"********({len(value.encode())} bytes)"


def mask_url(value: str) -> str:
    """The URL with any password replaced, for logs and ``chatserver settings``."""
    parts = urlsplit(value)
    if parts.password is None:
        return value
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}:****@{host}").geturl()


# --- one declaration per setting ---------------------------------------------------------------


class Told(Protocol[T_co]):
    """What ``from_env``, ``chatserver settings`` and the README table need of a field's variable(s)."""

    @property
    def names(self) -> tuple[str, ...]: ...
    @property
    def help(self) -> str: ...
    @property
    def shown_default(self) -> str | None: ...
    @property
    def default_from(self) -> Callable[[Mapping[str, Any]], T_co] | None: ...
    def read(self, env: Mapping[str, str], default: Any) -> T_co: ...
    def shown(self, value: Any) -> list[tuple[str, str]]: ...
    def deprecation(self, env: Mapping[str, str]) -> str | None: ...


@dataclass(frozen=True)
class Variable(Generic[T]):
    """One environment variable: its name, the parser of its text, its help and how to show its value."""

    name: str
    parse: Callable[[str, str], T]
    help: str
    shown_default: str | None = None  # README wording of the default; None shows the value itself
    masked: Callable[[str], str] | None = None  # shows a value with its secret part hidden
    default_from: Callable[[Mapping[str, Any]], T] | None = None  # a default that follows earlier settings

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def read(self, env: Mapping[str, str], default: T) -> T:
        raw = read_text(env, self.name)
        return default if raw is None else self.parse(self.name, raw)

    def shown(self, value: T) -> list[tuple[str, str]]:
        """``(variable, text)`` for ``value``, a secret masked."""
        if self.masked is not None and isinstance(value, str):
            return [(self.name, self.masked(value))]
        return [(self.name, _shown(value))]

    def deprecation(self, env: Mapping[str, str]) -> str | None:
        return None


@dataclass(frozen=True)
class RateVariables:
    """A token bucket told by two variables, ``<prefix>_RATE`` (tokens a second) and ``<prefix>_BURST``."""

    prefix: str
    help: str
    shown_default: str | None = None
    default_from: Callable[[Mapping[str, Any]], Rate] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (f"{self.prefix}_RATE", f"{self.prefix}_BURST")

    def read(self, env: Mapping[str, str], default: Rate) -> Rate:
        rate_name, burst_name = self.names
        raw = read_text(env, rate_name)
        try:
            per_second = default.per_second if raw is None else float(raw)
        except ValueError:
            raise SettingsError(f"{rate_name} must be a number, not {raw!r}") from None
        if not 0 < per_second < float("inf"):
            raise SettingsError(f"{rate_name} must be a number above 0, not {raw!r}")
        burst = read_text(env, burst_name)
        return Rate(per_second, default.burst if burst is None else whole_number(burst_name, burst))

    def shown(self, value: Rate) -> list[tuple[str, str]]:
        rate_name, burst_name = self.names
        return [(rate_name, _shown(value.per_second)), (burst_name, _shown(value.burst))]

    def deprecation(self, env: Mapping[str, str]) -> str | None:
        return None


def duration_or_none(name: str, raw: str) -> timedelta | None:
    """``3d``, ``12h``, ``90s`` or a sum such as ``1d12h`` (units s, m, h, d, w); ``none`` is no duration."""
    if raw.lower() == "none":
        return None
    try:
        return parse_duration(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a duration such as 3d, 12h or 2s, or none, not {raw!r}") from None


def parse_duration(raw: str) -> timedelta:
    """The duration ``raw`` spells; raises ``ValueError`` (also for zero)."""
    text = raw.strip().lower()
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(raw)
    seconds = sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds < 1:
        raise ValueError(raw)
    return timedelta(seconds=seconds)


_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _shown(value: object) -> str:
    """A value as it would be written in the environment (unset is empty)."""
    if value is None:
        return ""
    if isinstance(value, timedelta):
        return f"{int(value.total_seconds())}s"
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def setting(default: T, variable: Told[T]) -> T:
    """A ``Settings`` field: ``default`` for code that builds ``Settings()``, ``variable`` for the environment."""
    return dataclasses.field(default=default, metadata={"variable": variable})


def read_text(env: Mapping[str, str], name: str) -> str | None:
    """The variable's text, stripped; ``None`` when unset or blank."""
    value = env.get(name, "").strip()
    return value or None
