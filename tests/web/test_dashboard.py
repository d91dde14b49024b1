"""The dashboard in headless Chromium (Debian's): rows arrive and update in place, alerts appear in colour.

uvicorn runs in the test's own event loop rather than a thread: the in-process bus is bound to one loop, and
publishing from the test onto it is how market data reaches the page. Playwright's async API shares that loop.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.serving import API_KEY, serving  # noqa: I001 (tests/api helpers)
from marketpulse.api.app import create_app
from marketpulse.bus import topics
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.accounts import token_on_plan
from support.browser import BROWSER_MARKS, CHROMIUM, CHROMIUM_ARGS  # noqa: F401 (other browser tests import them from here)

pytestmark = BROWSER_MARKS
SCREENSHOT = Path(tempfile.gettempdir()) / "marketpulse-dashboard.png"
T0 = 1_760_126_400_000
GREEN, RED = "rgb(22, 199, 132)", "rgb(234, 57, 67)"


def row(symbol: str, price: float, change: float, volume: float, funding: float | None, precision: int | None,
        oi: float | None = None) -> dict[str, Any]:
    return {"symbol": symbol, "time": T0, "price": price, "change_pct_24h": change, "quote_volume_24h": volume,
            "funding_rate": funding, "price_precision": precision, "open_interest_usd": oi}


MARKET = [
    row("BTCUSDT", 60_000.5, 2.31, 12.7e9, 0.0001, 1),
    row("ETHUSDT", 2_400.25, -1.05, 8.5e9, -0.00005, 2),
    row("SOLUSDT", 150.123, 5.5, 3.4e6, 0.0002, 3),
    row("1000PEPEUSDT", 0.0123456, 12.0, 850_200.0, None, 7),
    *[row(f"ALT{i:03d}USDT", 1.0 + i / 100, (i % 7) - 3.0, 1e6 * (200 - i), 0.0001, 4) for i in range(150)],
]


def alert(symbol: str, direction: str, minute: int, current: float, previous: float) -> dict[str, Any]:
    return {"symbol": symbol, "asset": symbol.removesuffix("USDT"), "currentVolume": current,
            "previousVolume": previous, "volumeRatio": round(current / previous, 2), "price": 150.25,
            "fundingRate": 0.0001, "candleDirection": direction, "alertType": "SPIKE",
            "message": f"{symbol} volume spike", "timestamp": T0 + minute * 60_000, "hourTimestamp": T0,
            "isUpdate": False}


@pytest.fixture
async def runtime(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Runtime]:
    db = tmp_path / "web.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", ingest_api_key=API_KEY,
                        market_debounce_ms=50, data_dir=tmp_path)
    rt = Runtime.open(settings, clock=FakeClock(T0 + 3_600_000), bus=MemoryBus())
    yield rt
    await rt.close()


async def test_dashboard_shows_live_rows_and_alerts(runtime: Runtime) -> None:
    from playwright.async_api import async_playwright, expect

    bus = runtime.bus
    async with serving(create_app(runtime)) as url, async_playwright() as pw:
        # An alert stored before the page loads comes from GET /api/v1/volume-alerts.
        async with httpx.AsyncClient(base_url=url) as http:
            r = await http.post("/api/v1/volume-alerts/ingest", headers={"X-API-Key": API_KEY},
                                json=alert("DOGEUSDT", "bearish", 5, 9.9e6, 3.0e6))
            assert r.status_code == 200, r.text

        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        # An elite user's session (every symbol, the open interest, each alert at once; the free view is
        # tests/web/test_plans_live.py's).
        token = await token_on_plan(runtime, "elite")
        await page.context.add_cookies([{"name": "mp_access", "value": token, "url": url}])
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(url + "/")
        await expect(page.locator("#conn-status")).to_have_attribute("data-state", "connected")
        await expect(page.locator(".alert-card[data-symbol='DOGEUSDT']")).to_have_count(1)
        await expect(page.locator("#plan-name")).to_have_text("Elite")
        await expect(page.locator("#batch-countdown")).to_have_text("Alerts: instant")

        # Rows arrive over Socket.IO and are formatted as traders read them.
        await bus.publish(topics.MARKET_TICKERS, {"time": T0, "rows": MARKET})
        btc = page.locator("tr[data-symbol='BTCUSDT']")
        await expect(btc.locator("td[data-col=price]")).to_have_text("60,000.5")
        await expect(btc.locator("td[data-col=changePct24h]")).to_have_text("+2.31%")
        await expect(btc.locator("td[data-col=quoteVolume24h]")).to_have_text("$12.70B")
        await expect(btc.locator("td[data-col=fundingRate]")).to_have_text("0.0100%")
        await expect(btc.locator("td[data-col=openInterestUsd]")).to_have_text("—")
        await expect(page.locator("tr[data-symbol='SOLUSDT'] td[data-col=quoteVolume24h]")).to_have_text("$3.4M")
        await expect(page.locator("tr[data-symbol='1000PEPEUSDT'] td[data-col=price]")).to_have_text("0.0123456")
        await expect(page.locator("tr[data-symbol='ETHUSDT'] td[data-col=changePct24h]")).to_have_class("neg")
        await expect(page.locator("#market-body tr")).to_have_count(len(MARKET))
        assert await page.locator("#market-body tr").first.get_attribute("data-symbol") == "BTCUSDT"  # by volume

        # An update changes the row in place (same element) and leaves what it doesn't carry.
        await btc.evaluate("tr => { tr.dataset.marker = 'same-node'; }")
        await bus.publish(topics.MARKET_TICKERS, {"time": T0 + 1000, "rows": [
            {"symbol": "BTCUSDT", "time": T0 + 1000, "price": 61_234.5, "change_pct_24h": 4.4,
             "quote_volume_24h": 12.9e9}]})
        await bus.publish(topics.MARKET_OPEN_INTEREST, {"asOf": T0, "data": {"BTCUSDT": 9.5e9}})
        await expect(btc.locator("td[data-col=price]")).to_have_text("61,234.5")
        await expect(btc.locator("td[data-col=openInterestUsd]")).to_have_text("$9.50B")
        await expect(btc.locator("td[data-col=fundingRate]")).to_have_text("0.0100%")
        assert await btc.get_attribute("data-marker") == "same-node"

        # Live alerts: newest first, green for bullish, red for bearish.
        await bus.publish(topics.ALERTS_VOLUME, alert("SOLUSDT", "bullish", 10, 12.7e6, 3.1e6))
        sol = page.locator(".alert-card[data-symbol='SOLUSDT']")
        await expect(sol).to_have_count(1)
        await expect(sol).to_contain_text("This hour: $12.7M")
        await expect(sol).to_contain_text("Last hour: $3.1M")
        await expect(sol).to_contain_text("4.10×")
        await expect(sol).to_contain_text("SPIKE")
        assert await sol.evaluate("e => getComputedStyle(e).borderLeftColor") == GREEN
        doge = page.locator(".alert-card[data-symbol='DOGEUSDT']")
        assert await doge.evaluate("e => getComputedStyle(e).borderLeftColor") == RED
        assert await page.locator(".alert-card").first.get_attribute("data-symbol") == "SOLUSDT"

        # Sorting by clicking a header, and the filter box.
        await page.click("th[data-sort=symbol]")
        await expect(page.locator("#market-body tr").first).to_have_attribute("data-symbol", "1000PEPEUSDT")
        await page.click("th[data-sort=symbol]")
        await expect(page.locator("#market-body tr").first).to_have_attribute("data-symbol", "SOLUSDT")
        await page.click("th[data-sort=quoteVolume24h]")
        await page.fill("#filter", "eth")
        await expect(page.locator("#market-body tr")).to_have_count(1)
        await page.fill("#filter", "")
        await expect(page.locator("#market-body tr")).to_have_count(len(MARKET))

        await page.screenshot(path=str(SCREENSHOT))
        assert errors == []
        await browser.close()


async def test_liquidation_feed_shows_stored_then_live_liquidations(runtime: Runtime) -> None:
    """The feed loads the newest stored liquidations, then each Socket.IO `liquidations` batch lands on top
    (longs red, shorts green, the listed total in the title), and a click opens the symbol's chart."""
    from playwright.async_api import async_playwright, expect

    from marketpulse.bus.topics import LiquidationsEvent
    from marketpulse.marketdata.liquidations import save_liquidations
    from marketpulse.marketdata.models import Liquidation

    await save_liquidations(runtime.sessions, "replay", [Liquidation("ETHUSDT", "short", 2_400.0, 10.0, 24_000.0, T0)])
    async with serving(create_app(runtime)) as url, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(url + "/")
        await expect(page.locator("#conn-status")).to_have_attribute("data-state", "connected")
        feed = page.locator("#liquidations li")
        await expect(feed).to_have_count(1)
        await expect(feed.first).to_contain_text("SHORT")
        await expect(feed.first).to_contain_text("$24.0K")

        await runtime.bus.publish(topics.MARKET_LIQUIDATIONS, LiquidationsEvent([
            Liquidation("BTCUSDT", "long", 110_000.0, 5.0, 550_000.0, T0 + 60_000)]))
        await expect(feed).to_have_count(2)
        newest = feed.first
        await expect(newest).to_have_attribute("data-symbol", "BTCUSDT")
        await expect(newest).to_contain_text("LONG")
        await expect(newest).to_contain_text("$550.0K")
        assert await newest.locator(".liq-side").evaluate("e => getComputedStyle(e).color") == RED
        assert await feed.nth(1).locator(".liq-side").evaluate("e => getComputedStyle(e).color") == GREEN
        await expect(page.locator("#liq-total")).to_have_text("$574.0K")
        await expect(page.locator("#liquidations-empty")).to_be_hidden()
        await newest.click()
        await page.wait_for_url(url + "/market/BTCUSDT")
        await browser.close()
        assert errors == []
