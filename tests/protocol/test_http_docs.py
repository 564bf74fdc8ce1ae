"""What a developer browses over HTTP: the OpenAPI document, offline Swagger UI, health, and ``CHAT_ROOT_PATH``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
import websockets

from tests.conftest import ServerFactory
from tests.protocol.test_ws_messages import ALL_EVENTS
from tests.support.browser import BrowserFactory
from tests.support.harness import Client, ServerProcess, token

MESSAGE_FIELDS = {
    "_id", "clan_id", "sender", "content", "feeling", "responseType", "type", "reactions", "createdAt", "updatedAt",
    "editedAt",
}  # fmt: skip
FRAME_COMPONENTS = {
    "ClientFrame",
    "MessageData",
    "ReactionData",
    "ReadyFrame",
    "BroadcastFrame",
    "WrappedBroadcastFrame",
    "MembershipFrame",
    "ErrorFrame",
    "HttpErrorBody",
    "HistoryPage",
    "HealthBody",
    "Message",
}
READY_CHECKS = {"status": "ok", "checks": {"store": True, "broker": True, "accepting": True}}


def validate_openapi(document: dict[str, Any]) -> None:
    """openapi-spec-validator's full check where it happens to be installed (it is not a dependency of ours);
    the structural checks in the tests run everywhere."""
    try:
        from openapi_spec_validator import validate
    except ImportError:
        return
    validate(document)


def get(server: ServerProcess, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(f"{server.http_url}{path}", timeout=10, **kwargs)


def refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` value anywhere in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(document: dict[str, Any], ref: str) -> Any:
    """Follow a local JSON pointer (``#/a/b``) in ``document``; ``KeyError`` if it leads nowhere."""
    assert ref.startswith("#/"), f"non-local $ref {ref!r}"
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


class AssetLinks(HTMLParser):
    """The URLs a browser would fetch for a page: ``<script src>`` and ``<link rel=stylesheet href>``."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and attributes.get("src"):
            self.scripts.append(str(attributes["src"]))
        if tag == "link" and attributes.get("rel") == "stylesheet" and attributes.get("href"):
            self.stylesheets.append(str(attributes["href"]))


def check_docs_page(server: ServerProcess, path: str) -> None:
    """``path`` serves Swagger UI whose script, stylesheet and spec URL this same server answers, no CDN."""
    page_url = f"{server.http_url}{path}"
    page = httpx.get(page_url, timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert not re.search(r"(?:https?:)?//", page.text), f"absolute or CDN URL in the docs page:\n{page.text}"

    links = AssetLinks()
    links.feed(page.text)
    assert links.scripts and links.stylesheets, page.text
    for asset, kind in [
        *((src, "javascript") for src in links.scripts),
        *((href, "css") for href in links.stylesheets),
    ]:
        url = urljoin(page_url, asset)
        assert urlsplit(url).netloc == urlsplit(server.http_url).netloc, url
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200, url
        assert kind in response.headers["content-type"], (url, response.headers["content-type"])
        assert len(response.content) > 1000, url

    spec_urls = re.findall(r'url:\s*"([^"]+)"', page.text)
    assert len(spec_urls) == 1, page.text
    spec = httpx.get(urljoin(page_url, spec_urls[0]), timeout=10)
    assert spec.status_code == 200
    assert spec.json()["openapi"] == "3.1.0"


@pytest.fixture(scope="module")
def openapi(embedded_server: ServerProcess) -> dict[str, Any]:
    response = get(embedded_server, "/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def component_validator(openapi: dict[str, Any], name: str) -> Any:
    """A JSON Schema (2020-12, OpenAPI 3.1's dialect) validator for one component, refs resolved in the document."""
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is needed to check live bodies against the schema"
    )
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": openapi["components"]}
    )


# --- /openapi.json -------------------------------------------------------------------------------

MODERATION = "/chat/moderation/"  # its paths are checked in tests/protocol/test_moderation_api.py


def test_openapi_json_is_an_openapi_3_1_document_with_the_http_routes(openapi: dict[str, Any]) -> None:
    validate_openapi(openapi)
    assert openapi["openapi"] == "3.1.0"
    assert openapi["info"]["title"] and openapi["info"]["version"]
    assert openapi["servers"] == [{"url": "/"}]
    paths = {path: item for path, item in openapi["paths"].items() if not path.startswith(MODERATION)}
    assert set(paths) == {"/chat/history", "/healthz", "/readyz", "/internal/membership"}
    for path, item in paths.items():
        (method,) = item
        assert method == ("post" if path == "/internal/membership" else "get"), path
        for status, response in item[method]["responses"].items():
            assert re.fullmatch(r"[1-5]\d\d", status), (path, status)
            assert response["description"], (path, status)
            assert set(response["content"]) == {"application/json"}, (path, status)

    history = openapi["paths"]["/chat/history"]["get"]
    assert {parameter["name"] for parameter in history["parameters"]} == {"type", "limit", "page", "before"}
    assert all(parameter["in"] == "query" for parameter in history["parameters"])
    assert history["security"] == [{"bearer": []}]
    assert openapi["paths"]["/internal/membership"]["post"]["security"] == [{"serviceToken": []}]
    assert openapi["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert history["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HistoryPage"
    }
    assert "/ws/chat" in openapi["info"]["description"]


def test_openapi_describes_the_websocket_frames_as_components(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    assert FRAME_COMPONENTS <= set(schemas)
    for name in FRAME_COMPONENTS:
        assert schemas[name].get("properties"), f"{name} documents no properties: {schemas[name]}"
    assert set(schemas["ClientFrame"]["properties"]) == {"event", "data", "ref"}
    assert set(schemas["BroadcastFrame"]["properties"]) == {"chat", "event", "message"}
    assert set(schemas["ErrorFrame"]["properties"]) == {"error", "ref"}
    assert set(schemas["HistoryPage"]["properties"]) == {"data", "metaData", "paginationData"}
    assert schemas["InboundEvent"]["enum"] == ALL_EVENTS
    assert schemas["BroadcastEvent"]["enum"] == ["newMessage", "newReaction", "editedMessage", "deletedMessage"]


def test_every_ref_in_openapi_json_resolves(openapi: dict[str, Any]) -> None:
    found = sorted(set(refs(openapi)))
    assert found, "no $ref at all: the components are not wired to the paths"
    for ref in found:
        target = resolve(openapi, ref)
        assert isinstance(target, dict) and target, ref


def test_message_schema_has_exactly_the_protocol_field_names(openapi: dict[str, Any]) -> None:
    message = openapi["components"]["schemas"]["Message"]
    assert set(message["properties"]) == MESSAGE_FIELDS
    assert set(message["required"]) == MESSAGE_FIELDS - {"clan_id", "feeling", "editedAt", "responseType"}
    sender = resolve(openapi, "#/components/schemas/Sender")
    assert set(sender["properties"]) == {"_id", "name", "avatar"}
    reaction = resolve(openapi, "#/components/schemas/Reaction")
    assert set(reaction["properties"]) == {"playerName", "emoji", "sender_id"}


async def test_what_the_server_sends_matches_the_documented_schemas(
    embedded_server: ServerProcess, openapi: dict[str, Any], new_id: Callable[[], str]
) -> None:
    bearer = token(new_id(), name="Aino", clan_id=new_id(), avatar={"head": 3})
    client = await Client.connect(embedded_server, bearer, ready=False)
    try:
        ready = await client.recv()
        await client.send({"event": "clanMessage", "data": {"content": "schema check", "feeling": "happy"}})
        broadcast = await client.recv()
        await client.send({"event": "clanMessage", "data": {"content": ""}, "ref": "r1"})
        error = await client.recv()
    finally:
        await client.close()
    page = get(embedded_server, "/chat/history?type=clan", headers={"Authorization": f"Bearer {bearer}"}).json()
    refused = get(embedded_server, "/chat/history").json()

    assert broadcast["message"]["content"] == "schema check"
    assert page["data"]["ChatMessage"] == [broadcast["message"]]
    assert error["ref"] == "r1"
    for name, body in [
        ("ReadyFrame", ready),
        ("BroadcastFrame", broadcast),
        ("Message", broadcast["message"]),
        ("ErrorFrame", error),
        ("HistoryPage", page),
        ("HttpErrorBody", refused),
        ("HealthBody", get(embedded_server, "/healthz").json()),
        ("HealthBody", get(embedded_server, "/readyz").json()),
    ]:
        errors = [f"{e.json_path}: {e.message}" for e in component_validator(openapi, name).iter_errors(body)]
        assert errors == [], (name, body)
    client_frame = {"event": "globalMessageReaction", "data": {"message_id": "a" * 24, "emoji": "🔥"}}
    assert list(component_validator(openapi, "ClientFrame").iter_errors(client_frame)) == []
    assert list(component_validator(openapi, "ClientFrame").iter_errors({"event": "hello", "data": {}})) != []


# --- /docs ---------------------------------------------------------------------------------------


def test_docs_page_loads_swagger_ui_from_this_server_not_a_cdn(embedded_server: ServerProcess) -> None:
    check_docs_page(embedded_server, "/docs")


def documented_operations(server: ServerProcess, prefix: str = "") -> list[str]:
    """Every operation of the server's OpenAPI document as Swagger UI labels it: method and path."""
    paths = get(server, f"{prefix}/openapi.json").json()["paths"]
    return sorted(f"{method.upper()}{path}" for path, item in paths.items() for method in item)


def rendered_operations(server: ServerProcess, path: str, browsers: BrowserFactory, shot: str) -> list[str]:
    """Open Swagger UI in headless Chromium and read the operations it lists (method and path, as shown)."""
    browser = browsers()
    browser.open(f"{server.http_url}{path}")
    browser.wait_for_element(".opblock-summary-path", "/chat/history")
    browser.screenshot(shot)
    assert browser.find_all(".errors-wrapper") == [], browser.find(".errors-wrapper").text
    assert browser.console_errors() == []
    return sorted(
        block.find_element("css selector", ".opblock-summary-method").text
        + block.find_element("css selector", ".opblock-summary-path").text
        for block in browser.find_all(".opblock")
    )


def test_docs_page_renders_every_operation_in_chromium(
    embedded_server: ServerProcess, browsers: BrowserFactory
) -> None:
    operations = rendered_operations(embedded_server, "/docs", browsers, "docs")
    assert operations == documented_operations(embedded_server)
    assert {"GET/chat/history", "POST/internal/membership", "GET/healthz", "GET/readyz"} <= set(operations)


# --- GET / ---------------------------------------------------------------------------------------


def test_the_root_links_to_the_docs_the_console_and_health(embedded_server: ServerProcess) -> None:
    response = get(embedded_server, "/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "service": "Altzone chat",
        "links": {
            "docs": "/docs",
            "openapi": "/openapi.json",
            "console": "/console",
            "healthz": "/healthz",
            "readyz": "/readyz",
            "websocket": "/ws/chat",
        },
    }
    for name, link in response.json()["links"].items():
        if name != "websocket":
            assert get(embedded_server, link).status_code == 200, link


# --- health --------------------------------------------------------------------------------------


def test_healthz_answers_ok_with_no_checks(embedded_server: ServerProcess) -> None:
    response = get(embedded_server, "/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok", "checks": {}}


def test_readyz_answers_ok_with_store_broker_and_accepting_checks(embedded_server: ServerProcess) -> None:
    response = get(embedded_server, "/readyz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == READY_CHECKS


# --- CHAT_ROOT_PATH ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_server(server_factory: ServerFactory) -> ServerProcess:
    """A server behind a proxy prefix, as in production (``wss://altzone.fi/api/ws/chat``)."""
    return server_factory(CHAT_ROOT_PATH="/api")


PREFIXES = pytest.mark.parametrize("prefix", ["/api", ""], ids=["under-api", "unprefixed"])


@PREFIXES
async def test_root_path_websocket_gets_ready_and_its_message_shows_in_history(
    api_server: ServerProcess, new_id: Callable[[], str], prefix: str
) -> None:
    player_id, clan_id = new_id(), new_id()
    bearer = token(player_id, name="Aino", clan_id=clan_id)
    connection = await websockets.connect(f"ws://127.0.0.1:{api_server.port}{prefix}/ws/chat?token={bearer}")
    client = Client(connection)
    try:
        assert await client.recv() == {"event": "ready", "data": True}
        message = await client.post("clan", "behind the proxy")
    finally:
        await client.close()

    response = get(api_server, f"{prefix}/chat/history?type=clan", headers={"Authorization": f"Bearer {bearer}"})
    assert response.status_code == 200
    assert response.json() == {
        "data": {"ChatMessage": [message]},
        "metaData": {"dataKey": "ChatMessage", "modelName": "ChatMessage", "dataType": "Array", "dataCount": 1},
        "paginationData": {"currentPage": 1, "limit": 20, "offset": 0, "itemCount": 1, "pageCount": 1},
    }
    assert message["sender"] == {"_id": player_id, "name": "Aino", "avatar": None}
    assert message["clan_id"] == clan_id


@PREFIXES
def test_root_path_history_without_a_token_is_401(api_server: ServerProcess, prefix: str) -> None:
    response = get(api_server, f"{prefix}/chat/history")
    assert response.status_code == 401
    assert response.json() == {
        "errors": [
            {
                "reason": "NOT_AUTHENTICATED",
                "field": "token",
                "value": None,
                "message": "The access token is not provided",
                "additional": None,
            }
        ],
        "statusCode": 401,
    }


@PREFIXES
def test_root_path_docs_page_and_its_assets_load(api_server: ServerProcess, prefix: str) -> None:
    check_docs_page(api_server, f"{prefix}/docs")


def test_root_path_docs_page_renders_in_chromium(api_server: ServerProcess, browsers: BrowserFactory) -> None:
    operations = rendered_operations(api_server, "/api/docs", browsers, "docs-under-api")
    assert operations == documented_operations(api_server, "/api")


@PREFIXES
def test_root_path_root_links_carry_the_prefix(api_server: ServerProcess, prefix: str) -> None:
    links = get(api_server, f"{prefix}/").json()["links"]
    assert links["docs"] == "/api/docs" and links["console"] == "/api/console"
    assert get(api_server, links["console"]).status_code == 200


@PREFIXES
def test_root_path_openapi_json_names_the_prefix_as_its_server(api_server: ServerProcess, prefix: str) -> None:
    response = get(api_server, f"{prefix}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["servers"] == [{"url": "/api"}]
    paths = {path for path in document["paths"] if not path.startswith(MODERATION)}
    assert paths == {"/chat/history", "/healthz", "/readyz", "/internal/membership"}
    validate_openapi(document)


@PREFIXES
def test_root_path_health_and_readiness_answer(api_server: ServerProcess, prefix: str) -> None:
    healthz, readyz = get(api_server, f"{prefix}/healthz"), get(api_server, f"{prefix}/readyz")
    assert (healthz.status_code, healthz.json()) == (200, {"status": "ok", "checks": {}})
    assert (readyz.status_code, readyz.json()) == (200, READY_CHECKS)


def test_root_path_does_not_serve_other_prefixes(api_server: ServerProcess) -> None:
    assert get(api_server, "/other/healthz").status_code == 404
    assert get(api_server, "/api/api/healthz").status_code == 404
