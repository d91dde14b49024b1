"""The symbol page in headless Chromium: from a dashboard row to the chart (canvas drawn, candles from the store),
an indicator added, the symbol's volume alert as a marker, the forming candle following live prices, and a click
on an alert card opening its symbol too."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.serving import API_KEY, serving  # noqa: I001 (tests/api helpers)
from marketpulse.api.app import create_app
from marketpulse.bus import topics
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.open_interest import save_open_interest
from marketpulse.marketdata.store import save_candles
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from marketpulse.web.assets import VENDOR_FILES
from support.accounts import user_on_plan

from .test_dashboard import CHROMIUM, CHROMIUM_ARGS, alert, row

CHART_LIBRARY = Path.cwd() / "node_modules" / VENDOR_FILES["lightweight-charts.js"]  # where the app looks
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is missing (make test installs it)"),
    pytest.mark.skipif(not CHART_LIBRARY.is_file(), reason="lightweight-charts is not installed: run `npm ci`"),
]
HOUR = 3_600_000
T0 = 1_760_126_400_000  # 2025-10-10 20:00 UTC
HOURS = 48
SCREENSHOT = Path(tempfile.gettempdir()) / "marketpulse-symbol.png"


@pytest.fixture
async def runtime(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Runtime]:
    db = tmp_path / "web.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", ingest_api_key=API_KEY,
                        market_debounce_ms=50, data_dir=tmp_path)
    rt = Runtime.open(settings, clock=FakeClock(T0 + HOUR), bus=MemoryBus())
    yield rt
    await rt.close()


async def seed(runtime: Runtime) -> None:
    """48 hourly SOLUSDT candles up to T0 (a zigzag, so every indicator has something to say) and OI snapshots."""
    candles = []
    for i in range(HOURS):
        base = 150.0 + (i % 6) * 2 - (i // 12)
        candles.append(Candle("SOLUSDT", "1h", T0 - (HOURS - i) * HOUR, base, base + 3, base - 2, base + 1.5,
                              1000.0 + i, 150_000.0 + i))
    await save_candles(runtime.sessions, "binance", candles)
    for i in range(12):
        await save_open_interest(runtime.sessions, {"SOLUSDT": 5e8 + i * 1e6}, T0 - 12 * HOUR + i * HOUR)


async def test_row_click_opens_the_chart_with_indicators_alert_markers_and_live_candle(runtime: Runtime) -> None:
    from playwright.async_api import async_playwright, expect

    await seed(runtime)
    async with serving(create_app(runtime)) as url, async_playwright() as pw:
        async with httpx.AsyncClient(base_url=url) as http:
            spike = alert("SOLUSDT", "bullish", 5, 9.9e6, 3.0e6) | {"timestamp": T0 - 5 * HOUR + 300_000,
                                                                    "hourTimestamp": T0 - 5 * HOUR}
            r = await http.post("/api/v1/volume-alerts/ingest", headers={"X-API-Key": API_KEY}, json=spike)
            assert r.status_code == 200, r.text
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        # An elite session: the live table at once (free views arrive in batches, tests/web/test_plans_live.py).
        user, token = await user_on_plan(runtime, "elite")
        await page.context.add_cookies([{"name": "mp_access", "value": token, "url": url}])
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(url + "/")
        await expect(page.locator("#conn-status")).to_have_attribute("data-state", "connected")
        # Inside the last stored hour: the table's price, which the chart page may receive before or after its
        # history (Socket.IO sends the table on connect), moves that hour's close and never adds a candle.
        before = T0 - 60_000
        await runtime.bus.publish(topics.MARKET_TICKERS, {"time": before, "rows": [
            row("BTCUSDT", 60_000.5, 2.31, 12.7e9, 0.0001, 1) | {"time": before},
            row("SOLUSDT", 151.5, 5.5, 3.4e9, 0.0002, 3) | {"time": before}]})

        await page.locator("tr[data-symbol='SOLUSDT'] td[data-col=price]").click()
        await page.wait_for_url(url + "/market/SOLUSDT")
        chart = page.locator("#chart")
        await expect(chart).to_have_attribute("data-candles", str(HOURS))
        await expect(chart).to_have_attribute("data-alert-markers", "1")
        await expect(chart).to_have_attribute("data-oi", "12")
        assert await page.locator("#chart canvas").count() > 0
        # The quote line: the table's row, and the next funding (16:00 UTC funding passed; 00:00 is 4 h after T0
        # = 20:00 minus the minute the row is stamped before it).
        await expect(page.locator("#q-funding")).to_have_text("0.0200%")
        await expect(page.locator("#q-countdown")).to_contain_text("4:0")
        assert await page.locator("h1").inner_text() == "SOLUSDT"
        # The candle canvas is really drawn on: some pixel is not the background.
        painted = await page.evaluate("""() => [...document.querySelectorAll('#chart canvas')].some(c => {
            const ctx = c.getContext('2d'); if (!ctx || !c.width) return false;
            const d = ctx.getImageData(0, 0, c.width, c.height).data;
            for (let i = 0; i < d.length; i += 4) if (d[i] !== d[0] || d[i+1] !== d[1] || d[i+2] !== d[2]) return true;
            return false; })""")
        assert painted

        # An indicator: chosen in the form, computed by the server, drawn, remembered as a chip.
        await page.select_option("#study-kind", "ema")
        await page.fill("#study-params", "5")
        await page.click("#study-add")
        await expect(chart).to_have_attribute("data-studies", "ema:5")
        await page.select_option("#study-kind", "utbot")
        await page.fill("#study-params", "")
        await page.click("#study-add")
        await expect(chart).to_have_attribute("data-studies", "ema:5,utbot:1:10")
        await expect(page.locator(".chip[data-study='utbot:1:10']")).to_have_count(1)
        await expect(chart).to_have_attribute("data-alert-markers", "1")  # still there after the redraw
        await page.select_option("#study-kind", "rsi")
        await page.click("#study-add")
        await expect(chart).to_have_attribute("data-studies", "ema:5,utbot:1:10,rsi:14")
        await expect(chart).to_have_attribute("data-state", "ready")
        await page.screenshot(path=str(SCREENSHOT))

        # The forming candle follows the live price: a new hour starts a bar, the next tick moves its close.
        await runtime.bus.publish(topics.MARKET_TICKERS, {"time": T0 + 60_000, "rows": [
            {"symbol": "SOLUSDT", "time": T0 + 60_000, "price": 152.25, "change_pct_24h": 5.0,
             "quote_volume_24h": 3.4e9}]})
        await expect(chart).to_have_attribute("data-candles", str(HOURS + 1))
        await expect(chart).to_have_attribute("data-last-close", "152.25")

        # The user's paper fill and a new volume alert on this symbol arrive over Socket.IO and become markers.
        await runtime.bus.publish(topics.PAPER_FILLS, topics.PaperFill(
            user.id, "order-1", "fill-1", "SOLUSDT", "buy", 2.0, 151.0, 0.1, 0.0, T0 - 3 * HOUR + 60_000))
        await runtime.bus.publish(topics.PAPER_FILLS, topics.PaperFill(  # another symbol's: not on this chart
            user.id, "order-2", "fill-2", "BTCUSDT", "buy", 1.0, 60_000.0, 0.1, 0.0, T0 - 3 * HOUR))
        await expect(chart).to_have_attribute("data-fill-markers", "1")
        await runtime.bus.publish(topics.ALERTS_VOLUME, alert("SOLUSDT", "bearish", 10, 8e6, 2e6))
        await expect(chart).to_have_attribute("data-alert-markers", "2")

        # Another interval reloads: 4h built from the stored hours, then back to 1h.
        await page.click(".iv[data-interval='4h']")
        await expect(chart).to_have_attribute("data-candles", str(HOURS // 4))
        await page.click(".iv[data-interval='1h']")
        await expect(chart).to_have_attribute("data-candles", str(HOURS))

        # An alert card opens its symbol as well.
        await page.goto(url + "/")
        await page.locator(".alert-card[data-symbol='SOLUSDT']").click()
        await page.wait_for_url(url + "/market/SOLUSDT")
        assert errors == []
        await browser.close()
