"""Headless Chromium for the web tests: one launch recipe, one way to collect page errors, one way to sign in.

Playwright drives Debian's chromium (`make test` installs it); a test module marks itself with `BROWSER_MARKS`
so it is skipped, not failed, where the browser is missing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is missing (make test installs it)"),
]


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A launched headless Chromium, closed on exit."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Any, errors: list[str], width: int = 1280, height: int = 900,
                   console_errors: bool = False) -> Any:
    """A page in a fresh context (its own cookies) whose uncaught errors land in `errors`.

    With `console_errors`, console errors count too (that is where CSP refusals show); a 401 answered to the page's
    own "who am I" before signing in is the page asking, not a fault, so it is left out.
    """
    page = await (await browser.new_context(viewport={"width": width, "height": height})).new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    if console_errors:
        page.on("console", lambda m: errors.append(m.text)
                if m.type == "error" and "(Unauthorized)" not in m.text else None)
    return page


async def submit_sign_in(page: Any, email: str, password: str) -> None:
    """Fill and submit the sign-in form on whatever page shows it (/signin, /admin)."""
    await page.fill("#signin-form [name=email]", email)
    await page.fill("#signin-form [name=password]", password)
    await page.click("#signin-form button[type=submit]")


async def sign_in(page: Any, url: str, email: str, password: str, next_path: str = "/") -> None:
    """Sign in through the /signin page, which then goes on to `next_path`."""
    await page.goto(f"{url}/signin?next={next_path}")
    await submit_sign_in(page, email, password)


async def live_dashboard(context: Any, url: str, email: str, password: str, errors: list[str]) -> Any:
    """The dashboard, signed in through the API in `context` (its cookies serve the context's other pages), its
    Socket.IO connected, and marked so `window.__sameDocument` stays true only while the page is never reloaded."""
    from playwright.async_api import expect

    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    signin = await page.request.post(url + "/api/v1/auth/signin", data={"email": email, "password": password})
    assert signin.ok, await signin.text()
    await page.goto(url + "/")
    await expect(page.locator("#conn-status")).to_have_attribute("data-state", "connected")
    await page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    return page
