"""Browser tests' parts: the web app under uvicorn on loopback, and Debian's Chromium driven by
Playwright (the test setup installs the ``chromium`` package; Playwright's own browser
downloads are not used)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

from accord.console import web_app
from accord.service import Accord
from tests.served import serving

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("ACCORD_SCREENSHOTS", ROOT / ".artifacts" / "screenshots"))


def chromium_path() -> str:
    """Debian's Chromium. A missing browser fails the test: it is installed by ``./run test``."""
    found = os.environ.get("ACCORD_CHROMIUM") or shutil.which("chromium")
    if not found:
        raise AssertionError(
            "Chromium is not installed: `./run test` installs Debian's chromium package, or "
            "run `apt-get install -y chromium` (or set ACCORD_CHROMIUM to a Chromium binary)"
        )
    return found


@contextmanager
def served(accord: Accord) -> Iterator[str]:
    """The API and console of ``accord`` on a free loopback port; yields the base URL."""
    with serving(web_app(accord)) as url:
        yield url


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
