"""/paper in headless Chromium (Debian's) against a running PaperRunner fed candles and tickers on the bus.

Through the page's forms: a market order fills into a position on the next candle, an oversize order is refused
by the risk manager with its reason in words, a limit order without a price gets the API's field error beside the
field, a resting limit order is cancelled, a strategy is deployed and stopped, and a loss through the daily limit
raises the halted banner. uvicorn runs in the test's own event loop: the in-process bus is bound to one loop.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.serving import eventually, serving
from marketpulse.api.app import create_app
from marketpulse.bus import topics
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.realtime.bridge import user_room
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from marketpulse.trading.paper import page as paper_page
from marketpulse.trading.paper.runner import PaperRunner
from support.accounts import browser_sign_in

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is missing (make test installs it)"),
]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOT = Path(tempfile.gettempdir()) / "marketpulse-paper.png"
REJECTED_SCREENSHOT = Path(tempfile.gettempdir()) / "marketpulse-paper-rejected.png"
T0 = 1_760_126_400_000  # 2025-10-10 20:00 UTC
MINUTE = 60_000
GREEN, RED = "rgb(22, 199, 132)", "rgb(234, 57, 67)"


def candle(open_time: int, o: float, c: float) -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "interval": "1m", "open_time": open_time, "open": o, "high": max(o, c),
            "low": min(o, c), "close": c, "volume": 10.0, "quote_volume": 10.0 * c, "closed": True}


def ticker(time_ms: int, price: float) -> dict[str, Any]:
    return {"time": time_ms, "rows": [{
        "symbol": "BTCUSDT", "time": time_ms, "price": price, "change_pct_24h": 1.0, "quote_volume_24h": 1e10,
        "funding_rate": 0.0001, "open_interest_usd": None, "price_precision": 1}]}


@pytest.fixture
async def runtime(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Runtime]:
    db = tmp_path / "paper.db"
    shutil.copy(sqlite_template, db)
    # 5x leverage: the script's 0.5 BTC (~30k) stands on the 10k balance's margin (1x would refuse it).
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", data_dir=tmp_path,
                        paper_leverage=5)
    rt = Runtime.open(settings, clock=FakeClock(T0 - 10 * MINUTE), bus=MemoryBus())
    yield rt
    await rt.close()


@pytest.fixture
async def runner(runtime: Runtime) -> AsyncIterator[PaperRunner]:
    r = PaperRunner(runtime)
    await r.start()
    yield r
    await r.stop()


async def market_until(runtime: Runtime, candles: list[dict[str, Any]]) -> None:
    """Publish closed candles and wait until the runner's market clock has reached the last one's close."""
    await runtime.bus.publish(topics.MARKET_CANDLES, {"interval": "1m", "candles": candles})
    close = candles[-1]["open_time"] + MINUTE
    paper = runtime.services.paper

    async def reached() -> bool:
        return paper.clock.now_ms() >= close

    await eventually(reached)


async def test_trading_through_the_paper_page(runtime: Runtime, runner: PaperRunner) -> None:
    from playwright.async_api import Route, async_playwright, expect

    expect.set_options(timeout=10_000)  # the page polls every 2 s
    await market_until(runtime, [candle(T0 - 3 * MINUTE + i * MINUTE, 59_900.0 + 50 * i, 59_950.0 + 50 * i)
                                 for i in range(3)])
    await runtime.bus.publish(topics.MARKET_TICKERS, ticker(T0, 60_000.0))
    async with serving(create_app(runtime)) as url, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 1300})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(url + "/paper")  # signed out: to the sign-in page, which would bring the visitor back
        assert page.url == url + "/signin?next=%2Fpaper"
        me = await browser_sign_in(page, url, runtime)  # the session cookies, as the sign-in page leaves them
        await page.goto(url + "/paper")
        await expect(page.locator("#conn-status")).to_have_attribute("data-state", "live")
        await expect(page.locator('#account [data-field="equity"]')).to_have_text("$10,000.00")
        order, positions = page.locator("#order-form"), page.locator("#positions tbody tr")

        # A market buy through the form rests until the next candle, then fills at its open into a position.
        await order.locator("[name=quantity]").fill("0.5")
        await order.locator("button[type=submit]").click()
        await expect(order.locator("[data-message]")).to_contain_text("Order accepted: buy 0.5 BTCUSDT market")
        await expect(page.locator("#orders tbody tr")).to_have_count(1)
        await market_until(runtime, [candle(T0, 60_100.0, 60_300.0)])
        await expect(positions).to_have_count(1)
        btc = positions.first
        await expect(btc.locator("td").nth(1)).to_have_text("long")
        await expect(btc.locator("td").nth(2)).to_have_text("0.5")
        await expect(btc.locator("td").nth(3)).to_have_text("60,100.00")  # entry: the candle's open
        await expect(btc.locator("td").nth(4)).to_have_text("60,300.00")  # mark: its close
        await expect(btc.locator("td").nth(6)).to_have_text("+$100.00")
        await expect(btc.locator("td").nth(7)).to_have_text("manual")  # your own trades, not a strategy's
        assert await btc.locator("td").nth(6).evaluate("e => getComputedStyle(e).color") == GREEN
        # Polls update rows in place (a Cancel button under the pointer is never swapped mid-click).
        await btc.evaluate("tr => { tr.dataset.marker = 'same-node'; }")
        await expect(page.locator("#orders tbody tr")).to_have_count(0)
        [fill] = await page.locator("#fills tbody tr").all()
        await expect(fill.locator("td").nth(5)).to_have_text("$12.02")  # 4 bps taker fee on $30,050
        await expect(page.locator('#account [data-field="fees"]')).to_have_text("$12.02")

        # An order over the position-size limit: the risk manager's 409, in words, beside the form.
        await order.locator("[name=quantity]").fill("100")
        await order.locator("button[type=submit]").click()
        message = order.locator("[data-message]")
        await expect(message).to_contain_text("Rejected by risk: position too large")
        await expect(message).to_contain_text("over the limit (limit $100,000.00")
        assert "error" in (await message.get_attribute("class") or "")
        await order.screenshot(path=str(REJECTED_SCREENSHOT))

        # A limit order without its price: the API's 422 lands next to the limit-price field.
        await order.locator("[name=type]").select_option("limit")
        await order.locator("[name=quantity]").fill("0.1")
        await order.locator("button[type=submit]").click()
        await expect(order.locator('[data-error-for="limit_price"]')).to_have_text(
            "limit_price is required for limit orders")

        # A resting limit order appears under open orders; Cancel takes it off the book.
        await order.locator("[name=limit_price]").fill("50000")
        await order.locator("button[type=submit]").click()
        await expect(order.locator('[data-error-for="limit_price"]')).to_have_text("")
        resting = page.locator("#orders tbody tr")
        await expect(resting).to_have_count(1)
        await expect(resting.first.locator("td").nth(4)).to_have_text("50,000.00")
        order_id = await resting.first.get_attribute("data-key")
        await resting.first.locator("button", has_text="Cancel").click()
        await expect(resting).to_have_count(0)
        async with httpx.AsyncClient(base_url=url, headers=me.headers) as http:
            assert (await http.get(f"/api/v1/paper/orders/{order_id}")).json()["status"] == "cancelled"

        # Deploy: the strategy's parameters come from the registry; a bad one is refused, then a good one runs.
        deploy = page.locator("#deploy-form")
        await deploy.locator("[name=strategy]").select_option("ema_cross")
        await deploy.locator("[name=interval]").select_option("1m")
        fast = deploy.locator('fieldset[data-strategy="ema_cross"] [data-param="fast"]')
        await expect(fast).to_have_value("12")
        await fast.fill("1")
        await deploy.locator("button[type=submit]").click()
        await expect(deploy.locator('[data-error-for="params"]')).to_contain_text(
            "parameter 'fast': 1 is below the minimum 2")
        await fast.fill("5")
        await deploy.locator("[name=size]").fill("0.5")
        await deploy.locator("[name=long_only]").check()
        await deploy.locator("button[type=submit]").click()
        await expect(deploy.locator("[data-message]")).to_contain_text("Deployed: ema_cross on BTCUSDT 1m, long only")
        deployed = page.locator("#deployments tbody tr")
        await expect(deployed).to_have_count(1)
        await expect(deployed.first.locator("td").nth(3)).to_have_text("fast=5, slow=26 · long only · 50% per entry")
        await expect(deployed.first.locator("td").nth(4)).to_have_text("running")
        # Stopping asks nothing by default: the box beside Stop (unticked) leaves any position it holds open.
        await expect(deployed.first.locator("input[data-option=close_position]")).not_to_be_checked()
        await deployed.first.locator("button", has_text="Stop").click()
        await expect(deployed.first.locator("td").nth(4)).to_have_text("stopped")
        await expect(deployed.first.locator("button")).to_have_count(0)

        # A drop through the 5 % daily-loss limit halts the account: the banner says why and until when.
        await expect(page.locator("#halted")).to_be_hidden()
        await runtime.bus.publish(topics.MARKET_TICKERS, ticker(T0 + 2 * MINUTE, 58_000.0))
        await expect(page.locator("#halted")).to_be_visible()
        await expect(page.locator("#halted")).to_contain_text("daily loss limit")
        await expect(page.locator("#halted-until")).to_have_text("2025-10-11 00:00:00 UTC")
        await expect(page.locator("#halted-detail")).to_have_text("Equity is 10.62% below today's start of $10,000.00.")
        await expect(btc.locator("td").nth(6)).to_have_text("-$1,050.00")
        assert await btc.locator("td").nth(6).evaluate("e => getComputedStyle(e).color") == RED
        assert await btc.get_attribute("data-marker") == "same-node"

        # The API unreachable: the indicator says so, and recovers on the next good poll.
        async def refuse(route: Route) -> None:
            await route.abort()

        await page.route("**/api/v1/paper/**", refuse)
        await expect(page.locator("#conn-status")).to_have_attribute("data-state", "offline")
        await page.unroute("**/api/v1/paper/**", refuse)
        await expect(page.locator("#conn-status")).to_have_attribute("data-state", "live")

        # Close the position in one action (allowed while halted: it only reduces): filled at the last price seen.
        await btc.locator("button", has_text="Close").click()
        await expect(positions).to_have_count(0)
        await expect(page.locator('#account [data-field="realized_pnl"]')).to_have_text("-$1,050.00")
        closing = page.locator("#fills tbody tr").first
        await expect(closing.locator("td").nth(2)).to_have_text("sell")
        await expect(closing.locator("td").nth(4)).to_have_text("58,000.00")

        # A second deployment stopped with "close position" ticked sends that choice.
        await deploy.locator("button[type=submit]").click()
        await expect(deployed).to_have_count(2)
        running = page.locator("#deployments tbody tr", has=page.locator("button", has_text="Stop"))
        await running.locator("input[data-option=close_position]").check()
        async with page.expect_request("**/deployments/*/stop") as stopping:
            await running.locator("button", has_text="Stop").click()
        assert (await stopping.value).post_data_json == {"close_position": True}
        # Every write rode on the cookie with the CSRF cookie's value echoed (double submit).
        csrf = next(c["value"] for c in await page.context.cookies() if c["name"] == "mp_csrf")
        assert (await stopping.value).headers["x-csrf-token"] == csrf
        await expect(page.locator("#deployments tbody tr button")).to_have_count(0)

        await page.screenshot(path=str(SCREENSHOT), full_page=True)
        assert errors == []
        await browser.close()


async def test_a_fill_is_pushed_to_the_page_at_once(
    runtime: Runtime, runner: PaperRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page learns of a fill from the server's push (paper.fills → Socket.IO room user-{id}, joined by the
    session cookie), not from its next poll: polling is slowed to an hour here, so only the push can show the fill
    within the test."""
    from playwright.async_api import async_playwright, expect

    monkeypatch.setattr(paper_page, "REFRESH_MS", 3_600_000)
    expect.set_options(timeout=10_000)
    await market_until(runtime, [candle(T0 - MINUTE, 59_900.0, 60_000.0)])
    await runtime.bus.publish(topics.MARKET_TICKERS, ticker(T0, 60_000.0))
    app = create_app(runtime)
    async with serving(app) as url, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = await browser.new_page()
        me = await browser_sign_in(page, url, runtime)
        async with httpx.AsyncClient(base_url=url, headers=me.headers) as http:
            placed = await http.post("/api/v1/paper/orders", json={"symbol": "BTCUSDT", "side": "buy",
                                                                    "type": "market", "quantity": 0.1})
            assert placed.status_code == 201, placed.text
        await page.goto(url + "/paper")
        await expect(page.locator("#orders tbody tr")).to_have_count(1)  # from the page's bootstrap snapshot
        sio = app.engineio_server

        async def page_in_owner_room() -> bool:
            return any(True for _ in sio.manager.get_participants("/", user_room(me.user_id)))

        await eventually(page_in_owner_room)
        await market_until(runtime, [candle(T0, 60_100.0, 60_300.0)])  # the order fills at this open
        await expect(page.locator("#positions tbody tr")).to_have_count(1)
        await expect(page.locator("#fills tbody tr")).to_have_count(1)
        await browser.close()
