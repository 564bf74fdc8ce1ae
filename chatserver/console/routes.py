"""``GET /console``, ``/console/assets/*`` and, in development, ``POST /console/dev-token``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from chatserver.auth import mint_token
from chatserver.http import parsed_body
from chatserver.http_errors import error_response
from chatserver.protocol.errors import ChatError
from chatserver.settings import Settings

STATIC = Path(__file__).parent / "static"
DEV_TOKEN_TTL_SECONDS = 24 * 3600
# The page loads nothing from elsewhere and may not be framed; sockets go back to this same server.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class DevTokenRequest(BaseModel):
    """What the console's "mint" form sends: a display name, an optional clan, the moderator role."""

    name: str = Field(min_length=1, max_length=32)
    clan_id: str | None = Field(default=None, min_length=1, max_length=64)
    moderator: bool = False


class DevToken(BaseModel):
    token: str
    player_id: str


def dev_player_id(name: str) -> str:
    """A stable 24-hex player id per name, so "Aino" is the same player after a reload and can edit her messages."""
    return hashlib.sha256(name.casefold().encode()).hexdigest()[:24]


def console_routes(settings: Settings) -> list[BaseRoute]:
    """The console's routes, or none when ``CHAT_CONSOLE`` is off."""
    if not settings.console_enabled:
        return []
    page = (Path(__file__).parent / "page.html").read_text()

    async def console_page(request: Request) -> HTMLResponse:
        assets = request.url_for("console-assets", path="").path.rstrip("/")
        html = page.replace("{{assets}}", assets).replace("{{mint}}", str(settings.mints_console_tokens).lower())
        return HTMLResponse(html, headers=SECURITY_HEADERS)

    async def dev_token(request: Request) -> Response:
        try:
            wanted = _dev_token_request(await request.body())
        except ChatError as error:
            return error_response(error)
        player_id = dev_player_id(wanted.name)
        token = mint_token(
            settings,
            player_id,
            name=wanted.name,
            clan_id=wanted.clan_id,
            roles=["moderator"] if wanted.moderator else None,
            ttl_seconds=DEV_TOKEN_TTL_SECONDS,
        )
        return JSONResponse(
            DevToken(token=token, player_id=player_id).model_dump(), headers={"Cache-Control": "no-store"}
        )

    routes: list[BaseRoute] = [
        Route("/console", console_page, methods=["GET"]),
        Mount("/console/assets", app=StaticFiles(directory=str(STATIC)), name="console-assets"),
    ]
    if settings.mints_console_tokens:
        routes.append(Route("/console/dev-token", dev_token, methods=["POST"]))
    return routes


def _dev_token_request(body: bytes) -> DevTokenRequest:
    return parsed_body(DevTokenRequest, body)
