"""The console page as a person drives it in Chromium: sign a token, connect, type, click, read what shows."""

from __future__ import annotations

from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from tests.support.browser import Browser
from tests.support.harness import ServerProcess

# Chromium reports these by itself while a server is down; the page cannot silence them.
UNREACHABLE = ("WebSocket connection to", "net::ERR_CONNECTION_REFUSED")


class ConsolePage:
    """One window on ``/console``; selectors live here so the tests read as what a player does."""

    def __init__(self, browser: Browser, server: ServerProcess, path: str = "/console") -> None:
        self.browser = browser
        browser.open(f"{server.http_url}{path}")
        browser.wait_for_element("#connect-button")

    def sign_in(self, name: str, clan_id: str | None = None, *, moderator: bool = False) -> None:
        """Sign a development token from a name and clan, then connect and wait for ``ready``."""
        self.browser.find("#mint-name").send_keys(name)
        if clan_id:
            self.browser.find("#mint-clan").send_keys(clan_id)
        if moderator:
            self.browser.find("#mint-moderator").click()
        self.browser.find("#mint-button").click()
        self.browser.wait_for(lambda b: b.find("#token").get_attribute("value"), "a signed token in the token field")
        self.connect()

    def connect(self) -> None:
        self.browser.find("#connect-button").click()
        self.wait_for_log("ready", "ready")

    def send(self, chat: str, content: str, feeling: str | None = None) -> None:
        """Type into the room's form once it is usable (after ``ready`` and the room's history) and press Enter."""
        self.browser.wait_for(lambda b: b.find(f"#{chat}-content").is_enabled(), f"the {chat} message box enabled")
        self.browser.find(f"#{chat}-content").send_keys(content)
        if feeling:
            self.browser.find(f"#{chat}-feeling").send_keys(feeling)
        self.browser.find(f"#{chat}-content").send_keys(Keys.ENTER)

    def message(self, chat: str, content: str) -> WebElement:
        """The message showing ``content`` in the room, once it is there."""
        return self.browser.wait_for_element(f"#room-{chat} .message", content)

    def react_button(self, chat: str, content: str, emoji: str) -> WebElement:
        button: WebElement = self.message(chat, content).find_element(
            "css selector", f'button[data-action="react-{emoji}"]'
        )
        return button

    def wait_for_log(self, kind: str, text: str, timeout: float = 10.0) -> WebElement:
        return self.browser.wait_for_element(f'#log li[data-kind="{kind}"]', text, timeout)

    def log_lines(self) -> list[str]:
        return [item.text for item in self.browser.find_all("#log li")]

    def console_errors(self, *, allow_unreachable: bool = False) -> list[str]:
        errors = self.browser.console_errors()
        if allow_unreachable:
            errors = [error for error in errors if not any(marker in error for marker in UNREACHABLE)]
        return errors
