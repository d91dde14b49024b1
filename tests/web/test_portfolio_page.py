"""The portfolio page in headless Chromium: a user connects the fake Binance with a read-only key through the form,
sees it sync (status, masked key, transactions), the holdings with cost basis and P&L, the allocation chart by asset
and by category, and value over time once a snapshot is taken. Under the site's CSP, no page errors."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from api.serving import serving  # noqa: I001 (tests/api helpers)
from fakes.ccxt_exchange import Account, FakeCcxtExchange, my_trade
from marketpulse.api.app import create_app
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.store import save_candles
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.browser import BROWSER_MARKS, new_page, sign_in

pytestmark = BROWSER_MARKS
PASSWORD = "Correct-Horse-9-battery"
T0 = 1_760_126_400_000
H = 3_600_000
KEY, SECRET = "pagetestkey0000000000042", "page-secret-page-secret-page"


@pytest.fixture
def exchange() -> Iterator[FakeCcxtExchange]:
    fake = FakeCcxtExchange()
    fake.add_market("BTC", "USDT")
    fake.add_account(Account(KEY, SECRET, balances={"BTC": "0.5", "USDT": "2000"}, trades={"BTCUSDT": [
        my_trade(1, "BTCUSDT", T0 - 10 * H, "50000", "0.5", buyer=True)]}))
    with fake.running():
        yield fake


@pytest.fixture
async def runtime(sqlite_template: Path, tmp_path: Path, exchange: FakeCcxtExchange) -> AsyncIterator[Runtime]:
    db = tmp_path / "portfolio.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", ingest_api_key="test-key",
                        data_dir=tmp_path, jwt_secret_key="test-jwt-secret-of-at-least-32-bytes!",
                        portfolio_exchange_urls={"binance": exchange.url})
    rt = Runtime.open(settings, clock=FakeClock(T0), bus=MemoryBus())
    await save_candles(rt.sessions, "binance", [Candle("BTCUSDT", "1h", T0 - 11 * H, 50000, 50000, 50000, 50000, 1, 1),
                                                Candle("BTCUSDT", "1h", T0 - H, 60000, 60000, 60000, 60000, 1, 1)])
    yield rt
    await rt.close()


async def test_connect_an_exchange_and_see_the_portfolio(browser: Any, runtime: Runtime) -> None:
    from playwright.async_api import expect

    user = await runtime.services.accounts.create_user("pat@example.com", PASSWORD, verified=True)
    errors: list[str] = []
    async with serving(create_app(runtime)) as url:
        page = await new_page(browser, errors, console_errors=True)
        await sign_in(page, url, "pat@example.com", PASSWORD, next_path="/portfolio")
        await expect(page.locator("#site-nav a[aria-current=page]")).to_have_text("Portfolio")
        form = page.locator("#pf-connect")
        await form.locator("[name=name]").fill("my binance")
        await expect(form.locator("[name=chain]")).to_be_hidden()  # only the exchange's fields
        await form.locator("[name=api_key]").fill(KEY)
        await form.locator("[name=secret]").fill(SECRET)
        await page.click("#pf-connect-button")
        await expect(page.locator("#pf-connect-msg")).to_contain_text("Connected my binance")
        await runtime.services.portfolio.wait()
        await page.reload()
        row = page.locator("#pf-accounts tbody tr")
        await expect(row).to_have_attribute("data-status", "ok")
        await expect(row).to_contain_text("page…0042")
        await expect(row).not_to_contain_text(KEY)
        btc = page.locator("#pf-holdings tr[data-asset=BTC]")
        await expect(btc).to_contain_text("$30,000.00")  # 0.5 × 60,000
        await expect(btc).to_contain_text("$25,000.00")  # its cost basis
        await expect(btc).to_contain_text("$5,000.00")  # unrealized P&L
        await expect(page.locator("#pf-total")).to_have_text("$32,000.00")
        await expect(page.locator("#pf-allocation")).to_have_attribute("data-slices", "2")
        await page.click("[data-by=category]")
        await expect(page.locator("#pf-legend")).to_contain_text("bitcoin")
        await runtime.services.portfolio.snapshot(user.id)
        await page.reload()
        await expect(page.locator("#pf-chart")).to_have_attribute("data-points", "1")
        await expect(page.locator("#pf-chart canvas").first).to_be_visible()
    assert errors == [], errors
    assert json.dumps(errors) == "[]"
