"""The browser console at ``/console``: served offline by the package, and driven in real headless Chromium."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin

import httpx
import jwt
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from chatserver.console.routes import dev_player_id
from chatserver.settings import Settings, SettingsError
from tests.conftest import ServerFactory
from tests.protocol.test_http_docs import AssetLinks
from tests.support.browser import PHONE, Browser, BrowserFactory
from tests.support.console_page import ConsolePage
from tests.support.harness import TEST_SECRET, Client, ServerProcess, token

# --- the page over HTTP --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def console_server(server_factory: ServerFactory) -> ServerProcess:
    """An embedded server in development, where the console and its development tokens are on."""
    return server_factory()


def served_modules(entry: str) -> dict[str, str]:
    """Every JavaScript module the page loads, following ``import ... from "./x.js"`` from the entry module."""
    found: dict[str, str] = {}
    waiting = [entry]
    while waiting:
        url = waiting.pop()
        if url in found:
            continue
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200, url
        assert "javascript" in response.headers["content-type"], url
        found[url] = response.text
        waiting += [
            urljoin(url, module) for module in re.findall(r'^import .* from "(\./[\w-]+\.js)";$', response.text, re.M)
        ]
    return found


def test_console_page_and_its_assets_come_from_this_server(console_server: ServerProcess) -> None:
    page = httpx.get(f"{console_server.http_url}/console", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert not re.search(r"(?:https?:)?//", page.text), "an absolute or CDN URL in the console page"
    links = AssetLinks()
    links.feed(page.text)
    assert links.scripts == ["/console/assets/main.js"]
    assert links.stylesheets == ["/console/assets/console.css"]
    stylesheet = httpx.get(urljoin(str(page.url), links.stylesheets[0]), timeout=10)
    assert stylesheet.status_code == 200 and "css" in stylesheet.headers["content-type"]
    modules = served_modules(urljoin(str(page.url), links.scripts[0]))
    assert {url.rsplit("/", 1)[1] for url in modules} == {
        "main.js",
        "log.js",
        "session.js",
        "socket.js",
        "rooms.js",
        "views.js",
        "moderator.js",
        "operator.js",
    }
    for url, text in [(stylesheet.url, stylesheet.text), *modules.items()]:
        assert not re.search(r"https?://", text), f"{url} names another host"
    assert 'data-mint="true"' in page.text


def test_a_development_token_names_the_player_clan_and_role(console_server: ServerProcess) -> None:
    response = httpx.post(
        f"{console_server.http_url}/console/dev-token",
        json={"name": "Aino", "clan_id": "clan-7", "moderator": True},
        timeout=10,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["player_id"] == dev_player_id("Aino") == dev_player_id("aino")
    assert re.fullmatch(r"[0-9a-f]{24}", body["player_id"])
    claims = jwt.decode(body["token"], TEST_SECRET, algorithms=["HS256"])
    assert {key: claims[key] for key in ("player_id", "name", "clan_id", "roles")} == {
        "player_id": body["player_id"],
        "name": "Aino",
        "clan_id": "clan-7",
        "roles": ["moderator"],
    }
    assert claims["exp"] - claims["iat"] == 24 * 3600


def test_a_development_token_without_a_name_is_refused_in_the_error_body(console_server: ServerProcess) -> None:
    response = httpx.post(f"{console_server.http_url}/console/dev-token", json={"name": ""}, timeout=10)
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "reason": "VALIDATION",
                "field": "name",
                "value": None,
                "message": "String should have at least 1 character",
                "additional": None,
            }
        ],
        "statusCode": 400,
    }


def test_production_has_no_console_unless_enabled_and_never_signs_tokens(server_factory: ServerFactory) -> None:
    off = server_factory(CHAT_ENV="production")
    assert httpx.get(f"{off.http_url}/console", timeout=10).status_code == 404
    assert httpx.post(f"{off.http_url}/console/dev-token", json={"name": "x"}, timeout=10).status_code == 404
    assert "console" not in httpx.get(f"{off.http_url}/", timeout=10).json()["links"]

    on = server_factory(CHAT_ENV="production", CHAT_CONSOLE="true")
    page = httpx.get(f"{on.http_url}/console", timeout=10)
    assert page.status_code == 200
    assert 'data-mint="false"' in page.text
    assert httpx.post(f"{on.http_url}/console/dev-token", json={"name": "x"}, timeout=10).status_code == 404


def test_development_can_switch_the_console_off(server_factory: ServerFactory) -> None:
    off = server_factory(CHAT_CONSOLE="false")
    assert httpx.get(f"{off.http_url}/console", timeout=10).status_code == 404
    assert httpx.post(f"{off.http_url}/console/dev-token", json={"name": "x"}, timeout=10).status_code == 404


@pytest.mark.parametrize(
    ("env", "console", "mints"),
    [
        ({}, True, True),
        ({"CHAT_CONSOLE": "false"}, False, False),
        ({"CHAT_ENV": "production", "JWT_SECRET": TEST_SECRET}, False, False),
        ({"CHAT_ENV": "production", "JWT_SECRET": TEST_SECRET, "CHAT_CONSOLE": "on"}, True, False),
    ],
    ids=["development", "switched-off", "production", "production-switched-on"],
)
def test_console_settings(env: dict[str, str], console: bool, mints: bool) -> None:
    settings = Settings.from_env(env)
    assert (settings.console_enabled, settings.mints_console_tokens) == (console, mints)


def test_chat_console_must_be_true_or_false() -> None:
    with pytest.raises(SettingsError, match="CHAT_CONSOLE must be true or false, not 'maybe'"):
        Settings.from_env({"CHAT_CONSOLE": "maybe"})


# --- players in Chromium -------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def test_two_players_of_a_clan_exchange_a_message_and_a_reaction(
    console_server: ServerProcess, browsers: BrowserFactory, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    aino, veikko = ConsolePage(browsers(), console_server), ConsolePage(browsers(), console_server)
    aino.sign_in(unique("Aino"), clan)
    veikko.sign_in(unique("Veikko"), clan)

    aino.send("clan", "Moi klaani!", feeling="happy")
    seen = veikko.message("clan", "Moi klaani!")
    assert seen.find_element("css selector", ".feeling").text == "happy"
    veikko.react_button("clan", "Moi klaani!", "👍").click()
    aino.browser.wait_for(
        lambda _: aino.react_button("clan", "Moi klaani!", "👍").text == "👍 1", "Veikko's 👍 on Aino's message"
    )
    assert veikko.react_button("clan", "Moi klaani!", "👍").get_attribute("aria-pressed") == "true"
    assert aino.react_button("clan", "Moi klaani!", "👍").get_attribute("aria-pressed") == "false"

    veikko.send("global", "Hei kaikki")
    aino.message("global", "Hei kaikki")
    aino.browser.screenshot("player-aino")
    veikko.browser.screenshot("player-veikko")
    assert aino.console_errors() == [] and veikko.console_errors() == []


async def test_history_is_loaded_on_connect(
    console_server: ServerProcess, browsers: BrowserFactory, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    client = await Client.connect(console_server, token(new_id(), name="Earlier", clan_id=clan))
    await client.post("clan", "sent before the page opened")
    await client.close()
    page = ConsolePage(browsers(), console_server)
    page.sign_in(unique("Late"), clan)
    assert page.message("clan", "sent before the page opened").find_element("css selector", ".sender").text == "Earlier"
    assert page.console_errors() == []


def test_a_refused_token_shows_the_reason_in_the_log(console_server: ServerProcess, browsers: BrowserFactory) -> None:
    page = ConsolePage(browsers(), console_server)
    page.browser.find("#token").send_keys(token("a" * 24, secret="not-the-server-secret-" * 3))
    page.browser.find("#connect-button").click()
    line = page.wait_for_log("error", "401")
    assert "AUTHENTICATION_FAILED token The access token is invalid" in line.text
    assert page.browser.find("#status").text == "Token refused"
    page.browser.screenshot("refused-token")


async def test_the_page_shows_the_drain_close_code_and_resumes_after_a_restart(
    mongo_standin_url: str, browsers: BrowserFactory, tmp_path: Path, new_id: Callable[[], str]
) -> None:
    env = {
        "MONGODB_URL": mongo_standin_url,
        "MONGODB_DB": f"chat_test_{secrets.token_hex(4)}",
        "CHAT_PLAYERS_FROM_DB": "false",
        "CHAT_DRAIN_SECONDS": "5",
        "CHAT_ENV": "development",  # with a real backend, development tokens need development said outright
    }
    first = ServerProcess(env=env).start(tmp_path)
    second = ServerProcess(env=env, port=first.port)
    clan = new_id()
    try:
        page = ConsolePage(browsers(), first)
        page.sign_in(unique("Aino"), clan)
        page.send("clan", "before the restart")
        page.message("clan", "before the restart")

        first.stop()
        page.wait_for_log("close", "closed 1012")
        page.browser.screenshot("drained")
        second.start(tmp_path)
        page.wait_for_log("ready", "ready: resumed, recovered true", timeout=30)
        page.send("clan", "after the restart")
        page.message("clan", "after the restart")
        assert page.message("clan", "before the restart")
        page.browser.screenshot("resumed")
        assert "resumed, recovered true" in page.browser.find("#status").text

        # Away on purpose: what was said meanwhile is replayed by the resume, before ready.
        page.browser.find("#disconnect-button").click()
        page.wait_for_log("info", "disconnected")
        other = await Client.connect(second, token(new_id(), name="Veikko", clan_id=clan))
        await other.post("clan", "while you were away")
        await other.close()
        page.browser.find("#resume-button").click()
        page.browser.wait_for(
            lambda b: len([line for line in page.log_lines() if "ready: resumed, recovered true" in line]) == 2,
            "a second resume's ready",
        )
        page.message("clan", "while you were away")
        assert page.console_errors(allow_unreachable=True) == []
    finally:
        first.stop()
        second.stop()


def focus_by_tab(browser: Browser, css: str, *, limit: int = 40) -> None:
    """Press Tab until the element matching ``css`` has the focus, as a keyboard user would."""
    target = browser.find(css)
    for _ in range(limit):
        if browser.focused() == target:
            return
        ActionChains(browser.driver).send_keys(Keys.TAB).perform()
    pytest.fail(f"{css} never took the focus in {limit} presses of Tab")


def type_keys(browser: Browser, *keys: str) -> None:
    ActionChains(browser.driver).send_keys(*keys).perform()


def test_a_keyboard_alone_signs_in_sends_and_reacts(
    server_factory: ServerFactory, browsers: BrowserFactory, new_id: Callable[[], str]
) -> None:
    browser = browsers()
    page = ConsolePage(browser, server_factory())  # its own server: no other test's messages to Tab past
    focus_by_tab(browser, "#mint-name")
    type_keys(browser, unique("Keys"), Keys.TAB, new_id(), Keys.ENTER)  # Enter submits the form
    browser.wait_for(lambda b: b.focused() == b.find("#connect-button"), "the focus on Connect after signing")
    type_keys(browser, Keys.ENTER)
    page.wait_for_log("ready", "ready")

    browser.wait_for(lambda b: b.find("#clan-content").is_enabled(), "the clan message box enabled")
    focus_by_tab(browser, "#clan-content")
    type_keys(browser, "typed, not clicked", Keys.ENTER)
    message = page.message("clan", "typed, not clicked")
    assert browser.focused() == browser.find("#clan-content")

    # The newest message comes right after the send form: Tab on to its 🔥 and press Enter.
    focus_by_tab(browser, f'.message[data-id="{message.get_attribute("data-id")}"] [data-action="react-🔥"]', limit=8)
    type_keys(browser, Keys.ENTER)
    browser.wait_for(lambda _: page.react_button("clan", "typed, not clicked", "🔥").text == "🔥 1", "the 🔥 reaction")
    assert browser.focused().get_attribute("data-action") == "react-🔥", "the focus stays on the button pressed"
    browser.screenshot("keyboard")
    assert page.console_errors() == []


def test_the_page_fits_a_phone_screen(
    console_server: ServerProcess, browsers: BrowserFactory, new_id: Callable[[], str]
) -> None:
    browser = browsers(size=PHONE)
    page = ConsolePage(browser, console_server)
    page.sign_in(unique("Phone"), new_id())
    page.send("global", "from a phone")
    page.message("global", "from a phone")
    width = browser.run("return window.innerWidth")
    assert width <= PHONE[0]
    assert browser.run("return document.documentElement.scrollWidth") <= width, "the page scrolls sideways"
    assert browser.find("#session").get_attribute("open") is None, "the session forms fold away once connected"
    assert browser.find("#room-global").rect["y"] < PHONE[1], "the global room starts on the first screen"
    global_room = browser.find("#room-global").rect
    clan_room = browser.find("#room-clan").rect
    assert global_room["y"] + global_room["height"] <= clan_room["y"], "rooms stack on a phone"
    assert global_room["width"] <= width
    browser.screenshot("phone")
    assert page.console_errors() == []


# --- the operator view ---------------------------------------------------------------------------


async def test_the_operator_view_shows_this_replicas_sockets_rooms_and_message_rate(
    server_factory: ServerFactory, browsers: BrowserFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory()
    clan = new_id()
    page = ConsolePage(browsers(), server)
    page.sign_in(unique("Operator"), clan)
    client = await Client.connect(server, token(new_id(), name="Other", clan_id=clan))
    page.browser.find("#tab-operator").click()
    browser = page.browser
    browser.wait_for(lambda b: b.find("#op-sockets").text == "2", "two open sockets")
    assert browser.find("#op-rooms").text == "2"  # global and the clan
    browser.wait_for(lambda b: b.find("#op-messages").text == "0.0", "a first rate reading")
    for number in range(5):
        await client.post("clan", f"counted {number}")
    browser.wait_for(lambda b: float(b.find("#op-messages").text) > 0, "a message rate above zero", timeout=15)
    browser.screenshot("operator")
    await client.close()
    assert page.console_errors() == []


# --- behind a proxy prefix, and the moderator's view ---------------------------------------------


def test_the_console_works_under_the_root_path(
    server_factory: ServerFactory, browsers: BrowserFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory(CHAT_ROOT_PATH="/api")
    page = ConsolePage(browsers(), server, "/api/console")
    page.sign_in(unique("Proxied"), new_id())
    page.send("clan", "through /api")
    page.message("clan", "through /api")
    assert page.console_errors() == []


def test_only_a_moderator_token_shows_the_moderator_view(
    console_server: ServerProcess, browsers: BrowserFactory, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    player, moderator = ConsolePage(browsers(), console_server), ConsolePage(browsers(), console_server)
    player.sign_in(unique("Player"), clan)
    moderator.sign_in(unique("Moderator"), clan, moderator=True)
    player.send("clan", "may be moderated")
    moderator.message("clan", "may be moderated")

    assert not player.browser.find("#tab-moderator").is_displayed()
    assert player.message("clan", "may be moderated").find_elements("css selector", '[data-action^="moderator"]') == []
    assert moderator.browser.find("#tab-moderator").is_displayed()
    actions = moderator.message("clan", "may be moderated").find_elements("css selector", "button[data-action]")
    assert [button.get_attribute("data-action") for button in actions][-3:] == ["report", "moderator-delete", "mute"]
    moderator.browser.screenshot("moderator-sees-a-player-message")
    assert player.console_errors() == [] and moderator.console_errors() == []


def test_the_console_speaks_the_wiki_dialect_in_a_game_deployment(
    server_factory: ServerFactory, browsers: BrowserFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory(CHAT_DIALECT="game")
    page = ConsolePage(browsers(), server)
    page.sign_in(unique("Gamer"), new_id())  # waits for ready, which a game-dialect socket never gets
    page.send("global", "asked for altzone-chat.wiki")
    page.message("global", "asked for altzone-chat.wiki")
    assert page.console_errors() == []


def test_a_refused_frame_shows_its_reason_in_the_log(
    server_factory: ServerFactory, browsers: BrowserFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory(CHAT_FEELINGS="Happy,Sad")
    page = ConsolePage(browsers(), server)
    page.sign_in(unique("Feeler"), new_id())
    page.send("clan", "how do I feel", feeling="excited")
    line = page.wait_for_log("error", "clan message refused")
    assert "WRONG_ENUM feeling" in line.text
    page.browser.screenshot("refused-frame")
    assert page.browser.find_all("#room-clan .message") == []
    assert page.console_errors() == []


def test_an_expired_token_shows_4401_and_does_not_reconnect(
    console_server: ServerProcess, browsers: BrowserFactory, new_id: Callable[[], str]
) -> None:
    page = ConsolePage(browsers(), console_server)
    page.browser.find("#token").send_keys(token(new_id(), name="Brief", exp_in=3))
    page.connect()
    page.wait_for_log("close", "closed 4401")
    assert page.browser.find("#status").text == "Closed 4401: token expired: get a new token"
    assert not any("reconnecting" in line for line in page.log_lines())
    assert page.browser.find("#global-content").get_attribute("disabled") == "true"
    assert page.console_errors() == []


# --- the moderator's view over the moderation API ------------------------------------------------


def test_a_moderator_deletes_a_message_and_it_leaves_every_player_window(
    console_server: ServerProcess, browsers: BrowserFactory, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    aino, veikko = ConsolePage(browsers(), console_server), ConsolePage(browsers(), console_server)
    moderator = ConsolePage(browsers(), console_server)
    aino.sign_in(unique("Aino"), clan)
    veikko.sign_in(unique("Veikko"), clan)
    moderator.sign_in(unique("Moderator"), clan, moderator=True)
    aino.send("clan", "a rude word")
    for page in (aino, veikko, moderator):
        page.message("clan", "a rude word")
    moderator.message("clan", "a rude word").find_element("css selector", '[data-action="moderator-delete"]').click()
    moderator.wait_for_log("info", "deleted message")
    for page in (aino, veikko, moderator):
        page.browser.wait_for(
            lambda b: not any("a rude word" in m.text for m in b.find_all("#room-clan .message")), "the message gone"
        )
    veikko.browser.screenshot("deleted-by-moderator")
    for page in (aino, veikko, moderator):
        assert page.console_errors() == []


def test_a_moderator_mutes_and_unmutes_a_player(
    console_server: ServerProcess, browsers: BrowserFactory, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    player, moderator = ConsolePage(browsers(), console_server), ConsolePage(browsers(), console_server)
    name = unique("Noisy")
    player.sign_in(name, clan)
    moderator.sign_in(unique("Moderator"), clan, moderator=True)
    player.send("clan", "first")
    moderator.message("clan", "first").find_element("css selector", '[data-action="mute"]').click()
    browser = moderator.browser
    assert browser.find("#view-moderator").is_displayed()
    assert browser.find("#mute-player").get_attribute("value") == dev_player_id(name)
    assert browser.focused() == browser.find("#mute-minutes")
    browser.find("#mute-reason").send_keys("spam")
    browser.find("#mute-reason").send_keys(Keys.ENTER)
    muted = browser.wait_for_element(f'#mutes li.mute[data-player-id="{dev_player_id(name)}"]')
    assert "spam" in muted.text
    browser.screenshot("moderator-mutes")

    player.send("clan", "still talking")
    line = player.wait_for_log("error", "clan message refused")
    assert "NOT_ALLOWED" in line.text

    muted.find_element("css selector", "button").click()
    browser.wait_for_element("#mutes li", "No one is muted.")
    player.send("clan", "talking again")
    player.message("clan", "talking again")
    assert player.console_errors() == [] and moderator.console_errors() == []


def test_a_player_edits_and_deletes_an_own_message_in_every_window(
    console_server: ServerProcess, browsers: BrowserFactory, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    aino, veikko = ConsolePage(browsers(), console_server), ConsolePage(browsers(), console_server)
    aino.sign_in(unique("Aino"), clan)
    veikko.sign_in(unique("Veikko"), clan)
    aino.send("clan", "with a tpyo")
    veikko.message("clan", "with a tpyo")
    assert veikko.message("clan", "with a tpyo").find_elements("css selector", '[data-action="edit"]') == []

    aino.message("clan", "with a tpyo").find_element("css selector", '[data-action="edit"]').click()
    field = aino.browser.focused()
    assert field.get_attribute("value") == "with a tpyo"
    field.clear()
    field.send_keys("with a typo fixed", Keys.ENTER)
    for page in (aino, veikko):
        edited = page.message("clan", "with a typo fixed")
        assert edited.find_element("css selector", ".edited").text == "edited"
    veikko.browser.screenshot("edited")

    aino.message("clan", "with a typo fixed").find_element("css selector", '[data-action="delete"]').click()
    for page in (aino, veikko):
        page.browser.wait_for(lambda b: b.find_all("#room-clan .message") == [], "the deleted message gone")
    assert aino.console_errors() == [] and veikko.console_errors() == []


def test_a_report_reaches_the_moderators_list(
    console_server: ServerProcess, browsers: BrowserFactory, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    player, moderator = ConsolePage(browsers(), console_server), ConsolePage(browsers(), console_server)
    writer = unique("Writer")
    moderator.sign_in(unique("Moderator"), clan, moderator=True)
    player.sign_in(writer, clan)
    moderator.send("clan", "report me")
    player.message("clan", "report me").find_element("css selector", '[data-action="report"]').click()
    player.wait_for_log("info", "reported a message")
    moderator.browser.find("#tab-moderator").click()
    moderator.browser.find("#reports-refresh").click()
    report = moderator.browser.wait_for_element("#reports li.report", '"report me"')
    assert f"reported by {dev_player_id(writer)}" in report.text
    moderator.browser.screenshot("moderator-reports")
    assert player.console_errors() == [] and moderator.console_errors() == []
