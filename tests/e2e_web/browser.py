"""Headless Debian chromium driven by Selenium, for the dashboard's browser tests. Missing
chromium or chromedriver skips on a laptop and fails under CI=true (the lab rule)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
UP_HINT = "bash scripts/lab/browser.sh up"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "web"
DESKTOP = (1280, 900)
PHONE = (390, 844)


def unavailable(reason: str) -> NoReturn:
    message = f"browser lab unavailable: {reason} ({UP_HINT})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def chrome() -> Any:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[dev]')")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).is_file() or shutil.which(Path(path).name)):
            unavailable(f"{path} is missing")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    return driver


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(None, timeout, poll_frequency=0.2).until(lambda _d: check(), message=what)
