"""The pages a developer opens first: ``GET /`` (where to go) and Swagger UI at ``/docs``.

Swagger UI comes from the assets bundled in ``swagger-ui-bundle-v2`` (no CDN): version 5 reads the
OpenAPI 3.1 document of ``/openapi.json`` (4.x said "does not specify a valid version field"), and
``validatorUrl: null`` keeps the page from calling the online validator.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from chatserver.settings import Settings

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Altzone chat API</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "{spec}", dom_id: "#swagger-ui", validatorUrl: null}});
  </script>
</body>
</html>
"""


def swagger_ui_5_directory() -> Path:
    """Swagger UI 5's assets in ``swagger_ui_bundle``, found by name.

    The old ``swagger-ui-bundle`` 1.x has the same import name: installed beside ``-v2`` it points
    ``swagger_ui_path`` at its 4.15.5 (which cannot read OpenAPI 3.1) but leaves version 5 in place.
    """
    found = sorted(
        Path(str(swagger_ui_path)).parent.glob("swagger-ui-5.*"),
        key=lambda path: tuple(int(part) for part in path.name.removeprefix("swagger-ui-").split(".")),
    )
    if not found:
        raise RuntimeError("Swagger UI 5 is not installed: pip install 'swagger-ui-bundle-v2>=5.31,<6'")
    return found[-1]


swagger_assets = StaticFiles(directory=str(swagger_ui_5_directory()))


async def swagger_page(request: Request) -> HTMLResponse:
    assets = request.url_for("swagger-assets", path="").path.rstrip("/")
    spec = request.url_for("openapi").path
    return HTMLResponse(_PAGE.format(assets=assets, spec=spec))


def index_endpoint(settings: Settings) -> Callable[[Request], Awaitable[JSONResponse]]:
    """``GET /``: the service's name and links to what a person can open (the console only when it is on)."""
    prefix = settings.root_path
    links = {"docs": f"{prefix}/docs", "openapi": f"{prefix}/openapi.json"}
    if settings.console_enabled:
        links["console"] = f"{prefix}/console"
    links |= {"healthz": f"{prefix}/healthz", "readyz": f"{prefix}/readyz", "websocket": f"{prefix}/ws/chat"}
    body = {"service": "Altzone chat", "links": links}

    async def index(request: Request) -> JSONResponse:
        return JSONResponse(body)

    return index
