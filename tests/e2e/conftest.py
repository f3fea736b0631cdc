"""Headless Chromium for the dashboard's end-to-end tests, driven by Selenium.

Debian's `chromium` and its `chromedriver` (packages chromium, chromium-driver; `make browser`
installs them): nothing is downloaded. Where they are missing the tests skip and say so.
Screenshots go to $SHOAL_SCREENSHOTS when set (`make screenshots` sets docs/screenshots),
else to the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not fetch a browser or driver


def _binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Debian's chromium and chromium-driver are not installed (`make browser` installs them: "
                    "apt-get install chromium chromium-driver)")
    return chromium, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium, driver_path = _binaries()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("SHOAL_SCREENSHOTS")
    path = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait(driver: Any, predicate: Callable[[Any], Any], timeout: float = 20.0, what: str = "the page") -> Any:
    """Poll the page until predicate holds (Selenium's deadline poll); fail saying what never came."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(predicate)
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what}") from None
