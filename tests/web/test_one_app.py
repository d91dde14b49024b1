"""One app in headless Chromium (Debian's): the API reference renders with every request off this server blocked,
every page has the one nav (and its theme and time-zone switches, remembered), and at 390 px wide the dashboard and
/paper never scroll sideways (their tables become cards).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from api.serving import API_KEY, serving  # noqa: I001 (tests/api helpers)
from marketpulse.api.app import create_app
from marketpulse.bus import topics
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.accounts import browser_sign_in, token_on_plan
from support.browser import BROWSER_MARKS, chromium

NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"
pytestmark = BROWSER_MARKS
T0 = 1_760_126_400_000
PHONE = {"width": 390, "height": 844}


def ticker(symbol: str, price: float) -> dict[str, Any]:
    return {"symbol": symbol, "time": T0, "price": price, "change_pct_24h": -3.25, "quote_volume_24h": 1.25e9,
            "funding_rate": 0.0001, "price_precision": 2, "open_interest_usd": 2.5e9}


@pytest.fixture
async def runtime(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Runtime]:
    db = tmp_path / "app.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", ingest_api_key=API_KEY,
                        market_debounce_ms=50, data_dir=tmp_path, node_modules_dir=NODE_MODULES)
    rt = Runtime.open(settings, clock=FakeClock(T0), bus=MemoryBus())
    yield rt
    await rt.close()


@pytest.fixture
async def site(runtime: Runtime) -> AsyncIterator[str]:
    async with serving(create_app(runtime)) as url:
        yield url


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def offline_page(browser: Any, site: str, errors: list[str], blocked: list[str], **context: Any) -> Any:
    """A page that can reach this server and nothing else (every other request is aborted and recorded)."""
    ctx = await browser.new_context(**context)

    async def route(r: Any) -> None:
        if r.request.url.startswith(site):
            await r.continue_()
        else:
            blocked.append(r.request.url)
            await r.abort()

    await ctx.route("**/*", route)
    page = await ctx.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page


def needs_npm(name: str) -> None:
    if not (NODE_MODULES / name).is_dir():
        pytest.skip(f"node_modules has no {name}: run npm ci")


async def test_docs_and_redoc_render_with_the_network_blocked(browser: Any, site: str) -> None:
    from playwright.async_api import expect

    needs_npm("swagger-ui-dist")
    needs_npm("redoc")
    errors: list[str] = []
    blocked: list[str] = []
    page = await offline_page(browser, site, errors, blocked, viewport={"width": 1280, "height": 900})
    await page.goto(site + "/docs")
    # Swagger UI drew the operations from /openapi.json: the volume-alert list is one of them.
    await expect(page.locator("#swagger-ui .opblock-summary-path", has_text="/api/v1/volume-alerts/recent")
                 ).to_have_count(1)
    await expect(page.locator("#swagger-ui .info .title")).to_contain_text("marketpulse")
    await expect(page.locator("#site-nav a[data-section=market]")).to_have_count(1)  # the site's header too
    await page.goto(site + "/redoc")
    # ReDoc lays out the whole document before it calls back: seconds on a busy machine
    await expect(page.locator("#redoc")).to_have_attribute("data-state", "rendered", timeout=60_000)
    await expect(page.locator("#redoc h1").first).to_contain_text("marketpulse")
    await expect(page.get_by_text("/api/v1/volume-alerts/recent").first).to_be_attached()
    assert blocked == [] and errors == []


async def test_every_page_carries_the_one_nav_with_theme_and_zone_switches(browser: Any, site: str) -> None:
    from playwright.async_api import expect

    errors: list[str] = []
    page = await offline_page(browser, site, errors, [], viewport={"width": 1280, "height": 900})
    sections = ["Market", "Alerts", "Signals", "Paper", "Backtests", "Portfolio", "Tax", "Pricing"]
    for path in ["/", "/backtests", "/pricing", "/signin", "/docs"]:
        await page.goto(site + path)
        await expect(page.locator("#site-nav a[data-section]")).to_have_text(sections)
    # the theme: dark by default, light when chosen, and remembered on the next page
    html = page.locator("html")
    await page.goto(site + "/")
    assert await html.get_attribute("data-theme") is None
    dark_bg = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    await page.click("#pref-theme")
    await expect(html).to_have_attribute("data-theme", "light")
    light_bg = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert light_bg != dark_bg and light_bg == "rgb(244, 246, 250)"
    await page.goto(site + "/backtests")
    await expect(html).to_have_attribute("data-theme", "light")
    assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == light_bg
    # the time zone: UTC by default; the switch changes the site's formatter and is remembered
    await expect(page.locator("#pref-zone")).to_have_text("UTC")
    assert await page.evaluate("MP.when(Date.UTC(2025, 9, 10, 20, 1))") == "2025-10-10 20:01 UTC"
    today = await page.evaluate("MP.formatTime(Date.now(), {label: true})")
    assert re.fullmatch(r"\d\d:\d\d UTC", today), today  # today's time: no date
    await page.click("#pref-zone")
    await expect(page.locator("#pref-zone")).to_have_text("Local")
    await page.goto(site + "/")
    await expect(page.locator("#pref-zone")).to_have_text("Local")
    assert (await page.evaluate("MP.when(Date.UTC(2025, 9, 10, 20, 1))")).endswith(" local")
    # keyboard: the sort headings take focus and sort with Enter
    await page.focus("#market th[data-sort=symbol]")
    await page.keyboard.press("Enter")
    await expect(page.locator("#market th[data-sort=symbol]")).to_have_attribute("aria-sort", "ascending")
    assert errors == []


async def test_at_390px_the_dashboard_and_paper_do_not_scroll_sideways(browser: Any, site: str,
                                                                       runtime: Runtime) -> None:
    from playwright.async_api import expect

    errors: list[str] = []
    page = await offline_page(browser, site, errors, [], viewport=PHONE)
    token = await token_on_plan(runtime, "elite")
    await page.context.add_cookies([{"name": "mp_access", "value": token, "url": site}])
    await page.goto(site + "/")
    await runtime.bus.publish(topics.MARKET_TICKERS, {"time": T0, "rows": [
        ticker("BTCUSDT", 60_000.5), ticker("ETHUSDT", 2_400.25), ticker("1000SHIBUSDT", 0.0123)]})
    btc = page.locator("tr[data-symbol='BTCUSDT']")
    await expect(btc.locator("td[data-col=price]")).to_have_text("60,000.50")
    # a card: its cells stacked and labelled with their column's heading
    await expect(btc.locator("td[data-col=price]")).to_have_attribute("data-label", "Price")
    assert await btc.evaluate("tr => getComputedStyle(tr).display") == "block"
    await assert_no_sideways_scroll(page)
    # the menu opens from its button and its links are reachable
    await expect(page.locator("#site-nav a[data-section=paper]")).to_be_hidden()
    await page.click("#nav-toggle")
    await expect(page.locator("#site-nav a[data-section=paper]")).to_be_visible()
    await assert_no_sideways_scroll(page)

    await page.goto(site + "/paper")
    await expect(page.locator("#order-form")).to_be_visible()
    await assert_no_sideways_scroll(page)
    # every other page: the page itself never scrolls sideways (a comparison matrix scrolls inside its card)
    for path in ["/alerts", "/signals", "/backtests", "/portfolio", "/tax", "/pricing", "/settings", "/docs"]:
        await page.goto(site + path)
        await page.wait_for_load_state("networkidle")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (path, width)
    assert errors == []


async def assert_no_sideways_scroll(page: Any) -> None:
    widths = await page.evaluate("""() => ({doc: document.documentElement.scrollWidth, body: document.body.scrollWidth,
        view: window.innerWidth,
        wide: [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > innerWidth + 1
               && getComputedStyle(e).visibility !== 'hidden' && e.getClientRects().length)
               .slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)})""")
    assert widths["doc"] <= widths["view"] and widths["body"] <= widths["view"], widths
    assert widths["wide"] == [], widths


async def test_backtests_page_runs_the_defaults_into_a_chart_and_a_failure_clears_it(browser: Any, site: str,
                                                                                     runtime: Runtime) -> None:
    from playwright.async_api import expect

    needs_npm("lightweight-charts")
    errors: list[str] = []
    page = await offline_page(browser, site, errors, [], viewport={"width": 1280, "height": 900})
    await browser_sign_in(page, site, runtime, plan="elite")
    await page.goto(site + "/backtests")
    await expect(page.locator("#site-nav a[aria-current=page]")).to_have_text("Backtests")  # the site's header
    # the defaults: the bundled BTCUSDT minutes at 15m, ema_cross — they trade
    await expect(page.locator("#source")).to_have_value("sample:btcusdt_spot_1m")
    await expect(page.locator("#interval")).to_have_value("15m")
    await page.click("#run")
    await expect(page.locator("#job")).to_have_attribute("data-status", "done", timeout=60_000)
    chart = page.locator("#chart")
    await expect(chart).to_have_attribute("data-state", "drawn")
    assert int(await chart.get_attribute("data-candles") or 0) == 288  # 3 days of 15m bars on a time axis
    assert int(await chart.get_attribute("data-markers") or 0) > 2
    exits = (await chart.get_attribute("data-exits") or "").split(",")
    assert exits and "order" not in exits and set(exits) <= {"reversal", "exit signal", "stop loss", "take profit",
                                                            "trailing stop", "liquidation", "still open"}
    assert await page.locator("#trades tbody tr").count() > 2
    await expect(page.locator("#trades tbody tr").first.locator("td").nth(6)).not_to_have_text("order")
    # units, and no annualized figure over three days
    await expect(page.locator("#stats dd[data-stat=total_return]")).to_contain_text("%")
    await expect(page.locator("#stats dd[data-stat=start_cash]")).to_have_text("$10,000.00")
    await expect(page.locator("#stats dd[data-stat=cagr]")).to_contain_text("not shown: from 365 days")
    await expect(page.locator("#monthly tbody tr")).to_have_count(1)
    await expect(page.locator("#monthly tbody tr td").first).to_have_text("2025")
    # the HTML report draws the same chart with the library inlined (this page blocks everything off the server)
    report_url = await page.locator("#report-link").get_attribute("href")
    report = await offline_page(browser, site, errors, [], viewport={"width": 1280, "height": 900})
    await report.context.add_cookies(await page.context.cookies())
    await report.goto(site + str(report_url))
    await expect(report.locator("#chart")).to_have_attribute("data-state", "drawn")
    await expect(report.locator("tr[data-stat=cagr]")).to_contain_text("not shown")
    await report.close()
    # a failed submission leaves no trace of the previous result
    await page.fill("#symbol", "NOSUCHUSDT")
    await page.click("#run")
    await expect(page.locator("#job")).to_have_attribute("data-status", "failed", timeout=60_000)
    await expect(page.locator("#job-status")).to_contain_text("NOSUCHUSDT")
    await expect(page.locator("#chart")).to_be_hidden()
    assert await page.locator("#trades tbody tr").count() == 0
    assert await page.locator("#stats dd").count() == 0
    # a refused one (422) too
    await page.fill("#cash", "-5")
    await page.click("#run")
    await expect(page.locator("#error")).to_contain_text("cash")
    await expect(page.locator("#job")).to_be_hidden()
    assert errors == []


def volume_alert(symbol: str, kind: str, minute: int, hour: int, direction: str = "bullish") -> dict[str, Any]:
    """An alert at T0 + minute (minutes, may be negative) for the hour starting at T0 + hour (hours)."""
    return {"symbol": symbol, "currentVolume": 9.0e6, "previousVolume": 3.0e6, "volumeRatio": 3.0, "price": 1.5,
            "fundingRate": 0.0001, "candleDirection": direction, "alertType": kind,
            "timestamp": T0 + minute * 60_000, "hourTimestamp": T0 + hour * 3_600_000}


async def test_alerts_panel_keeps_spikes_on_top_counts_every_alert_and_rings_for_new_ones(
        browser: Any, site: str, runtime: Runtime) -> None:
    import httpx
    from playwright.async_api import expect

    stored = [volume_alert(f"ALT{i}USDT", "SPIKE", -55, -1) for i in range(11)]  # 19:05
    stored += [volume_alert("DOGEUSDT", "SPIKE", -50, -1, "bearish"),  # 19:10
               volume_alert("SOLUSDT", "SPIKE", -20, -1),  # 19:40: the newest spike
               volume_alert("DOGEUSDT", "FULL_UPDATE", 0, -1, "bearish")]  # 20:00: DOGE's hour closed
    async with httpx.AsyncClient(base_url=site) as http:
        r = await http.post("/api/v1/volume-alerts/ingest", headers={"X-API-Key": API_KEY}, json=stored)
        assert r.status_code == 200 and r.json()["stored"] == len(stored), r.text
        count = (await http.get("/api/v1/volume-alerts/count")).json()
        assert count == {"total": 14, "byType": {"SPIKE": 13, "HALF_UPDATE": 0, "FULL_UPDATE": 1}}
        assert (await http.get("/api/v1/volume-alerts/count?symbol=doge-usdt")).json()["total"] == 2

    errors: list[str] = []
    # An anonymous visitor (free plan) is listed 10 alerts; the panel's count is still all 14.
    page = await offline_page(browser, site, errors, [], viewport={"width": 1400, "height": 900})
    await page.goto(site + "/")
    await expect(page.locator("#alert-count")).to_have_text("14")
    assert await page.locator(".alert-card").count() + await page.locator(".alert-update").count() == 10
    # The newest spike heads the list although DOGE's hourly update came later; the update sits under its spike.
    await expect(page.locator(".alert-group").first).to_have_attribute("data-symbol", "SOLUSDT")
    doge = page.locator(".alert-group[data-symbol='DOGEUSDT']")
    await expect(doge.locator(".alert-card")).to_have_attribute("data-type", "SPIKE")
    await expect(doge.locator(".alert-update[data-type=FULL_UPDATE]")).to_have_count(1)
    # The badges explain themselves on hover; the times say they are the market's.
    assert "previous hour" in (await doge.locator(".alert-card .alert-type").get_attribute("title") or "")
    assert "closed" in (await doge.locator(".alert-update .alert-type").get_attribute("title") or "")
    assert await doge.locator(".alert-card time").get_attribute("title") == "Market time"
    # Spikes only: the updates disappear, the spikes stay.
    await page.select_option("#alert-filter", "spikes")
    await expect(doge.locator(".alert-update")).to_be_hidden()
    await expect(doge.locator(".alert-card")).to_be_visible()
    await page.select_option("#alert-filter", "all")

    # A real-time plan hears a new spike (sound on) and sees it on top; the count goes up by one.
    elite = await offline_page(browser, site, errors, [], viewport={"width": 1400, "height": 900})
    token = await token_on_plan(runtime, "elite")
    await elite.context.add_cookies([{"name": "mp_access", "value": token, "url": site}])
    await elite.goto(site + "/")
    await expect(elite.locator("#conn-status")).to_have_attribute("data-state", "connected")
    await expect(elite.locator("#alert-count")).to_have_text("14")
    await elite.check("#alert-sound")
    live = volume_alert("PEPEUSDT", "SPIKE", 1, 0) | {"asset": "PEPE", "message": "PEPEUSDT volume spike",
                                                    "isUpdate": False}
    await runtime.bus.publish(topics.ALERTS_VOLUME, live)
    await expect(elite.locator(".alert-group").first).to_have_attribute("data-symbol", "PEPEUSDT")
    await expect(elite.locator("#alert-count")).to_have_text("15")
    await expect(elite.locator("#alerts")).to_have_attribute("data-sounds", "1")
    await elite.reload()
    await expect(elite.locator("#alert-sound")).to_be_checked()  # remembered
    assert errors == []
