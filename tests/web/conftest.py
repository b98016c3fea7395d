"""The web storefront's tests: its bundle built once (when missing or stale), and one real
Chromium (Debian's, at /usr/bin/chromium: no browser is ever downloaded) for the session,
with a context of its own for each test."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from conveyor.api.storefront import default_web_dir
from conveyor.devstack.browser import CHROMIUM, CHROMIUM_FLAGS
from tests.support.edge import EdgeProcess

REPOSITORY = Path(__file__).resolve().parents[2]
AXE = REPOSITORY / "web" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def web_bundle() -> Path:
    """web/dist, built by the same script as `make web` (a no-op when it is up to date)."""
    subprocess.run(["bash", str(REPOSITORY / "scripts" / "web-build.sh")], check=True)
    built = default_web_dir()
    assert (built / "index.html").is_file()
    return built


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make install` (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """Playwright gives each launch a fresh temporary profile (user-data-dir) of its own."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=list(CHROMIUM_FLAGS)
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def context(
    browser: Browser, edge: EdgeProcess, web_bundle: Path
) -> AsyncIterator[BrowserContext]:
    opened = await browser.new_context(base_url=edge.base_url)
    opened.set_default_timeout(30_000)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()
