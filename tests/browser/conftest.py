"""Browser tests: the console in a real Chromium (Debian's, driven by Playwright), against the whole
platform on free ports (the `platform` fixture). `make test-browser` installs Playwright and, where it
can, Chromium; a missing browser fails these tests, it never skips them."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from omsctl.stack import Platform
from tests.conftest import ROOT, random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call

pytestmark = pytest.mark.browser
SHOTS = ROOT / "docs" / "console"


def chromium_path() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("no Chromium: `make test-browser` installs Debian's chromium package (as root)")
    return found


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as driver:
        launched = await driver.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(locale="en-GB", viewport={"width": 1400, "height": 1000})
    opened = await context.new_page()
    yield opened
    await context.close()


def console_url(platform: Platform) -> str:
    return f"http://{platform.endpoints['envoy']}/console"


async def console_user(
    platform: Platform, *roles: str, customer_id: str = "", sub: str = ""
) -> tuple[str, str]:
    """A console user made through the public API (as `omsctl user add` makes one): (name, password)."""
    name, password = sub or random_ref("user"), random_ref("pw")
    body = {"subject": name, "password": password, "roles": list(roles), "customerId": customer_id}
    status, _, answer = await call(platform, "POST", "/v1/users", body, bearer(platform, "admin"))
    assert status == 200, answer
    return name, password


async def sign_in(page: Page, platform: Platform, name: str, password: str, lands_on: str) -> None:
    await page.goto(console_url(platform))
    await page.fill("[data-test=username]", name)
    await page.fill("[data-test=password]", password)
    await page.click("[data-test=sign-in]")
    await page.wait_for_selector(f"main[data-page={lands_on}]")


async def shot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
