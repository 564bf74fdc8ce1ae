"""Bearer tokens: find one on a request, verify it with PyJWT, and mint development tokens.

The token is the game's own (same ``JWT_SECRET``, HS256), so the game client reuses the token it
already holds for the HTTP API. The algorithm is pinned from settings, never taken from the token
header, which rules out ``alg: none`` and algorithm confusion.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from chatserver.protocol import ErrorReason
from chatserver.protocol.errors import ChatError
from chatserver.settings import Settings


@dataclass(frozen=True)
class Identity:
    """Who a verified token says the caller is; profile fields are only used without the game database."""

    player_id: str
    profile_id: str | None = None
    name: str | None = None
    clan_id: str | None = None
    avatar: dict[str, Any] | None = None
    expires_at: float | None = None
    issued_at: float | None = None
    roles: tuple[str, ...] = ()


def token_from_request(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """``Authorization: Bearer <jwt>`` first, else the ``token`` query parameter (docs/protocol.md §1)."""
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    token = query.get("token", "").strip()
    return token or None


def authenticate(token: str | None, settings: Settings) -> Identity:
    """Verify ``token`` and read its claims, or raise ``ChatError`` with a 401 reason."""
    if token is None:
        raise _token_error(ErrorReason.NOT_AUTHENTICATED, "The access token is not provided")
    try:
        claims = jwt.decode(token, settings.jwt_secret, algorithms=[settings.jwt_algorithm])
    except jwt.ExpiredSignatureError:
        raise _token_error(ErrorReason.AUTHENTICATION_FAILED, "The access token is expired") from None
    except jwt.PyJWTError:
        raise _token_error(ErrorReason.AUTHENTICATION_FAILED, "The access token is invalid") from None
    exp, iat = claims.get("exp"), claims.get("iat")
    if exp is not None and not isinstance(exp, int | float):
        # PyJWT reads "exp": "1796215549" as a number, but no expiry timer would be set: RFC 7519 wants a NumericDate.
        raise _token_error(ErrorReason.AUTHENTICATION_FAILED, "The access token is invalid")
    player_id = claims.get("player_id")
    if not isinstance(player_id, str) or not player_id:
        raise _token_error(ErrorReason.AUTHENTICATION_FAILED, "The access token has no player_id")
    return Identity(
        player_id=player_id,
        profile_id=_optional_str(claims.get("profile_id")),
        name=_optional_str(claims.get("name")),
        clan_id=_optional_str(claims.get("clan_id")),
        avatar=claims.get("avatar") if isinstance(claims.get("avatar"), dict) else None,
        expires_at=None if exp is None else float(exp),
        issued_at=float(iat) if isinstance(iat, int | float) else None,
        roles=_roles(claims.get("roles")),
    )


def mint_token(
    settings: Settings,
    player_id: str,
    *,
    name: str | None = None,
    clan_id: str | None = None,
    profile_id: str | None = None,
    avatar: dict[str, Any] | None = None,
    roles: list[str] | None = None,
    ttl_seconds: float | None = 30 * 24 * 3600,
) -> str:
    """A signed token like the game's ``POST /auth/signIn`` issues, plus optional profile claims and ``roles``."""
    claims: dict[str, Any] = {"player_id": player_id, "iat": int(time.time())}
    optional = {"profile_id": profile_id, "name": name, "clan_id": clan_id, "avatar": avatar, "roles": roles}
    claims.update({key: value for key, value in optional.items() if value is not None})
    if ttl_seconds is not None:
        claims["exp"] = int(time.time() + ttl_seconds)
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)


def _roles(value: Any) -> tuple[str, ...]:
    """The ``roles`` claim (a list of strings, as the game backend mints moderators); anything else is none."""
    if not isinstance(value, list):
        return ()
    return tuple(role for role in value if isinstance(role, str))


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _token_error(reason: ErrorReason, message: str) -> ChatError:
    return ChatError.of(reason, "token", message)
