"""The console's moderation tools against the real moderation API, driven in headless Chromium:
a player deletes its own message, a moderator deletes another's, reads a report and mutes its sender."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import ServerFactory
from tests.support.browser import Browser, BrowserFactory
from tests.support.console_page import ConsolePage
from tests.support.harness import ServerProcess

BY_CSS = "css selector"


@pytest.fixture(scope="module")
def console_server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory()


def gone(page: ConsolePage, chat: str, content: str) -> None:
    """Wait until no message of the room shows ``content``."""

    def absent(browser: Browser) -> bool:
        return all(content not in item.text for item in browser.find_all(f"#room-{chat} .message"))

    page.browser.wait_for(absent, f"{content!r} gone from the {chat} room")


def test_deleting_from_the_console_removes_the_message_on_every_page(
    console_server: ServerProcess, browsers: BrowserFactory, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    player, moderator = ConsolePage(browsers(), console_server), ConsolePage(browsers(), console_server)
    player.sign_in(f"Player {clan[:6]}", clan)
    moderator.sign_in(f"Mod {clan[:6]}", clan, moderator=True)
    player.send("clan", "my own mistake")
    player.send("clan", "something rude")
    moderator.message("clan", "something rude")

    player.message("clan", "my own mistake").find_element(BY_CSS, 'button[data-action="delete"]').click()
    moderator.message("clan", "something rude").find_element(BY_CSS, 'button[data-action="moderator-delete"]').click()

    for page in (player, moderator):
        gone(page, "clan", "my own mistake")
        gone(page, "clan", "something rude")
    assert player.console_errors() == [] and moderator.console_errors() == []


def test_a_moderator_reads_a_report_in_the_console_and_mutes_the_sender(
    console_server: ServerProcess, browsers: BrowserFactory, new_id: Callable[[], str]
) -> None:
    clan = new_id()
    player, moderator = ConsolePage(browsers(), console_server), ConsolePage(browsers(), console_server)
    player.sign_in(f"Player {clan[:6]}", clan)
    moderator.sign_in(f"Mod {clan[:6]}", clan, moderator=True)
    player.send("clan", f"spam spam {clan}")

    moderator.message("clan", f"spam spam {clan}").find_element(BY_CSS, 'button[data-action="report"]').click()
    moderator.browser.find("#tab-moderator").click()
    moderator.browser.find("#reports-refresh").click()
    report = moderator.browser.wait_for_element("#reports li.report", f"spam spam {clan}")
    report.find_element(BY_CSS, 'button[aria-label^="Mute"]').click()
    moderator.browser.find('#mute-form button[type="submit"]').click()
    moderator.browser.wait_for_element("#mutes li.mute", "until")

    player.send("clan", "am I muted?")
    refused = player.wait_for_log("error", "muted until")
    assert "NOT_ALLOWED" in refused.text
    assert player.console_errors() == [] and moderator.console_errors() == []
