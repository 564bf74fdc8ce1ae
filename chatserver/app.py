"""``create_app(settings)``: the routes and the lifespan that starts and stops the worker's services."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from chatserver import http
from chatserver.console import console_routes
from chatserver.docs import index_endpoint, swagger_assets, swagger_page
from chatserver.entry import Entry
from chatserver.events.sinks import EventHook
from chatserver.lifespan import Lifespan
from chatserver.moderation import api as moderation
from chatserver.openapi import build_openapi
from chatserver.services import Services
from chatserver.settings import Settings


def create_app(settings: Settings, on_event: Sequence[EventHook] = ()) -> Entry:
    """The ASGI app; every route is served at ``/`` and, when set, under ``CHAT_ROOT_PATH`` too.

    Its ``services`` are the worker's, for the server's drain. ``on_event``: embedded mode's event
    stream, coroutines awaited with each event (README, "Events").
    """
    services = Services.build(settings, on_event)
    openapi_document = build_openapi(settings.root_path)

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(openapi_document)

    routes: list[BaseRoute] = [
        Route("/", index_endpoint(settings), methods=["GET"]),
        Route("/chat/history", http.history, methods=["GET"]),
        Route("/healthz", http.healthz, methods=["GET"]),
        Route("/readyz", http.readyz, methods=["GET"]),
        Route("/metrics", http.metrics_text, methods=["GET"]),
        Route("/internal/membership", http.internal_membership, methods=["POST"]),
        Route("/chat/moderation/messages/{message_id}", moderation.delete_message, methods=["DELETE"]),
        Route("/chat/moderation/mutes", moderation.create_mute, methods=["POST"]),
        Route("/chat/moderation/mutes", moderation.list_mutes, methods=["GET"]),
        Route("/chat/moderation/mutes/{player_id}", moderation.delete_mute, methods=["DELETE"]),
        Route("/chat/moderation/reports", moderation.list_reports, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"], name="openapi"),
        Route("/docs", swagger_page, methods=["GET"]),
        Mount("/docs/assets", app=swagger_assets, name="swagger-assets"),
        *console_routes(settings),
    ]
    if settings.root_path:
        routes = [Mount(settings.root_path, routes=list(routes)), *routes]

    app = Starlette(routes=routes)
    app.state.services = services
    return Entry(Lifespan(app, services), services, settings.root_path)  # Entry serves /ws/chat itself


def app_from_env() -> Entry:
    """Factory for ``uvicorn --factory`` and multi-worker runs: settings from the environment."""
    settings = Settings.from_env()
    settings.check_serving()
    return create_app(settings)
