"""Swagger UI at ``/docs``, served from the assets bundled in the ``swagger-ui-bundle`` package (no CDN)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Altzone chat API</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "{spec}", dom_id: "#swagger-ui"}});
  </script>
</body>
</html>
"""

swagger_assets = StaticFiles(directory=str(swagger_ui_path))


async def swagger_page(request: Request) -> HTMLResponse:
    assets = request.url_for("swagger-assets", path="").path.rstrip("/")
    spec = request.url_for("openapi").path
    return HTMLResponse(_PAGE.format(assets=assets, spec=spec))
