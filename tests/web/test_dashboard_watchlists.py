"""The dashboard for a signed-in user in headless Chromium: the table filters by one of their watchlists, a row's
star adds or removes its symbol (the API holds the change), and symbols they subscribed to carry a mark; an
anonymous visitor sees none of it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api.serving import serving  # noqa: I001 (tests/api helpers)
from marketpulse.api.app import create_app
from marketpulse.bus import topics
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.waiting import eventually

from .test_dashboard import CHROMIUM, CHROMIUM_ARGS, T0, row

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is missing (make test installs it)"),
]
PASSWORD = "Correct-Horse-9-battery"
MARKET = [row(s, 100.0 + i, 1.0, 1e9 - i * 1e6, 0.0001, 2) for i, s in enumerate(
    ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT", "XRPUSDT"])]


@pytest.fixture
async def runtime(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Runtime]:
    db = tmp_path / "watch.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", ingest_api_key="test-key",
                        market_debounce_ms=50, data_dir=tmp_path,
                        jwt_secret_key="test-jwt-secret-of-at-least-32-bytes!")
    rt = Runtime.open(settings, clock=FakeClock(T0), bus=MemoryBus())
    yield rt
    await rt.close()


async def test_a_signed_in_user_filters_by_watchlist_edits_it_and_sees_subscription_marks(runtime: Runtime) -> None:
    from playwright.async_api import async_playwright, expect

    accounts, watch = runtime.services.accounts, runtime.services.watchlists
    user = await accounts.create_user("watcher@example.com", PASSWORD, plan="pro", verified=True)
    from marketpulse.accounts.plans import plan_named

    majors = await watch.create(user.id, plan_named("pro"), "Majors", ["BTCUSDT", "ETHUSDT"])
    await watch.subscribe(user.id, plan_named("pro"), "SOLUSDT")

    app = create_app(runtime)
    async with serving(app) as url, async_playwright() as pw:
        # The table before the page loads: anonymous and pro visitors get whole tables at their plan's boundaries
        # (tests/realtime/test_tiers.py), not each update; the page carries the table at load.
        await runtime.bus.publish(topics.MARKET_TICKERS, {"time": T0, "rows": MARKET})
        await eventually(lambda: len(app.other_asgi_app.state.market_feed.snapshot()) == len(MARKET))
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(url + "/")
        await expect(page.locator("#conn-status")).to_have_attribute("data-state", "connected")
        body_rows = page.locator("#market-body tr")
        await expect(body_rows).to_have_count(5)

        # Anonymous: no watchlist tools, no stars, no marks.
        await expect(page.locator("#watchlist-tools")).to_be_hidden()
        assert await page.locator(".wl-star, .sub-mark").count() == 0

        signin = await page.evaluate("""async (password) => (await fetch('/api/v1/auth/signin', {method: 'POST',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({email: 'watcher@example.com', password})})).status""", PASSWORD)
        assert signin == 200
        await page.reload()
        await expect(page.locator("#watchlist-tools")).to_be_visible()
        await runtime.bus.publish(topics.MARKET_TICKERS, {"time": T0 + 1000, "rows": MARKET})
        await expect(body_rows).to_have_count(5)

        # The subscribed symbol is marked, the others aren't.
        await expect(page.locator("tr[data-symbol='SOLUSDT'] .sub-mark")).to_have_count(1)
        assert await page.locator(".sub-mark").count() == 1

        # Filter by the watchlist.
        await page.select_option("#watchlist-filter", label="Majors (2)")
        await expect(body_rows).to_have_count(2)
        assert sorted(await body_rows.evaluate_all("rs => rs.map(r => r.dataset.symbol)")) == ["BTCUSDT", "ETHUSDT"]

        # Remove one from the table, then add another while looking at every symbol.
        await page.click("tr[data-symbol='ETHUSDT'] .wl-star")
        await expect(body_rows).to_have_count(1)
        await page.select_option("#watchlist-filter", value="")
        await expect(body_rows).to_have_count(5)
        sol_star = page.locator("tr[data-symbol='SOLUSDT'] .wl-star")
        await expect(sol_star).to_have_attribute("aria-pressed", "false")
        await sol_star.click()
        await expect(sol_star).to_have_attribute("aria-pressed", "true")
        assert (await watch.get(user.id, majors.id)).symbols == ["BTCUSDT", "SOLUSDT"]
        await page.select_option("#watchlist-filter", label="Majors (2)")
        await expect(body_rows).to_have_count(2)  # rendering is batched: wait for it before reading the rows
        assert sorted(await body_rows.evaluate_all("rs => rs.map(r => r.dataset.symbol)")) == ["BTCUSDT", "SOLUSDT"]
        await browser.close()
    assert errors == []
