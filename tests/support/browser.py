"""Real headless Chromium for page tests: Debian's ``chromium`` driven by Selenium through ``chromedriver``.

Each ``Browser`` is its own Chromium with a fresh profile, so two of them are two players who share
nothing (storage, cookies). Screenshots go under the test's temp dir for a reviewer to look at.
Use the ``browsers`` fixture (registered by ``tests/conftest.py``): ``browsers()`` opens one.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_SECONDS = 10.0
# Quiet and offline: no first-run dialogs, no update or sync traffic, nothing but the page under test.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
DESKTOP = (1280, 900)
PHONE = (390, 844)
MIN_WINDOW_WIDTH = 500  # Chromium's narrowest window; a phone is emulated through DevTools instead


class Browser:
    """One headless Chromium window: open pages, find and wait for elements, screenshots, console errors."""

    def __init__(self, profile: Path, screenshots: Path, size: tuple[int, int] = DESKTOP) -> None:
        options = Options()
        options.binary_location = str(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={size[0]},{size[1]}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=str(CHROMEDRIVER), log_output=str(profile.with_suffix(".driver.log")))
        self.driver = webdriver.Chrome(options=options, service=service)
        if size[0] < MIN_WINDOW_WIDTH:
            self.driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": True},
            )
        self.screenshots = screenshots
        self._console: list[dict[str, Any]] = []

    def open(self, url: str) -> None:
        self.driver.get(url)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait_for(self, condition: Callable[[Browser], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
        """The first truthy value of ``condition(self)``; on timeout, a screenshot and a failure naming ``what``.

        An element the page redrew while ``condition`` read it is no failure: the next poll reads it again.
        """
        wait = WebDriverWait(
            self.driver, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
        )
        try:
            return wait.until(lambda _: condition(self))
        except TimeoutException:
            shot = self.screenshot(f"timeout-{what}")
            pytest.fail(f"{what}: not seen within {timeout}s (screenshot {shot})\n{self.driver.page_source[:4000]}")

    def wait_for_element(self, css: str, text: str | None = None, timeout: float = WAIT_SECONDS) -> WebElement:
        """A displayed element matching ``css`` (whose text contains ``text``, if given)."""

        def visible(browser: Browser) -> WebElement | None:
            for element in browser.find_all(css):
                if element.is_displayed() and (text is None or text in element.text):
                    return element
            return None

        element: WebElement = self.wait_for(visible, f"{css} {text or ''}".strip(), timeout)
        return element

    def run(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def focused(self) -> WebElement:
        element: WebElement = self.driver.switch_to.active_element
        return element

    def resize(self, width: int, height: int) -> None:
        self.driver.set_window_size(width, height)

    def screenshot(self, name: str) -> Path:
        self.screenshots.mkdir(parents=True, exist_ok=True)
        path = self.screenshots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def console_errors(self) -> list[str]:
        """Console errors and failed loads since the window opened (each entry read once by Chromium)."""
        self._console.extend(self.driver.get_log("browser"))
        return [entry["message"] for entry in self._console if entry["level"] == "SEVERE"]

    def quit(self) -> None:
        self.driver.quit()


BrowserFactory = Callable[..., Browser]


def chromium_missing() -> str | None:
    """Why page tests cannot run here, or None (``.ci/run`` installs Debian's chromium and chromium-driver)."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists() and not shutil.which(path.name)]
    if missing:
        return f"{' and '.join(missing)} missing: apt-get install chromium chromium-driver"
    return None


@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[BrowserFactory]:
    """Open headless Chromium windows (``browsers()`` or ``browsers(size=PHONE)``); all quit after the test."""
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    opened: list[Browser] = []

    def open_browser(size: tuple[int, int] = DESKTOP) -> Browser:
        browser = Browser(tmp_path / f"chromium-{len(opened)}", tmp_path / "screenshots", size)
        opened.append(browser)
        return browser

    yield open_browser
    for browser in opened:
        browser.quit()
