"""Signals in headless Chromium: an administrator creates a UT Bot config in the admin console's Signals tab, copies
its webhook URL and sees the Pine script carrying it, rotates the token, reads the config's figures and the
malformed-payload review list; a user subscribes on /signals (in-app, made for them), a TradingView payload is
posted to the webhook, and the signal shows in their history, on the config's card and in the admin's figures. Under
the site's CSP."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.serving import serving  # noqa: I001 (tests/api helpers)
from marketpulse.accounts.core import Role
from marketpulse.api.app import create_app
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from marketpulse.signals.worker import SignalWorker
from support.browser import BROWSER_MARKS, sign_in, submit_sign_in

from .test_dashboard import T0

pytestmark = BROWSER_MARKS
PASSWORD = "Correct-Horse-9-battery"
HOUR = 3_600_000


@pytest.fixture
async def runtime(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Runtime]:
    db = tmp_path / "signals.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", ingest_api_key="test-key",
                        data_dir=tmp_path, jwt_secret_key="test-jwt-secret-of-at-least-32-bytes!")
    rt = Runtime.open(settings, clock=FakeClock(T0), bus=MemoryBus())
    yield rt
    await rt.close()


def watch(page: object, errors: list[str]) -> None:
    page.on("pageerror", lambda exc: errors.append(str(exc)))  # type: ignore[attr-defined]
    # CSP refusals show as console errors; a 401 or 404 answer the page asked for on purpose is not a fault.
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"  # type: ignore[attr-defined]
            and "(Unauthorized)" not in m.text and "(Not Found)" not in m.text else None)


async def test_an_admin_sets_up_a_config_and_a_user_subscribes_and_receives_its_signal(browser: Any,
                                                                                          runtime: Runtime) -> None:
    from playwright.async_api import expect

    accounts = runtime.services.accounts
    await accounts.create_user("ops@example.com", PASSWORD, role=Role.ADMIN, verified=True)
    await accounts.create_user("ana@example.com", PASSWORD, plan="pro", verified=True)
    errors: list[str] = []

    async with serving(create_app(runtime)) as url:
        context = await browser.new_context(viewport={"width": 1400, "height": 900})
        await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
        page = await context.new_page()
        watch(page, errors)
        page.on("dialog", lambda dialog: dialog.accept())

        # --- the administrator ---
        await page.goto(url + "/admin#signals")
        await submit_sign_in(page, "ops@example.com", PASSWORD)
        await expect(page.locator("#signals")).to_be_visible()
        await expect(page.locator("#signal-queue-depth")).to_have_text("0")
        await page.click("#signal-new")
        await expect(page.locator("#signal-form [name=strategy]")).to_have_value("ut_bot")
        await page.fill("#signal-form [name=symbol]", "BINANCE:BTCUSDT.P")
        await page.select_option("#signal-form [name=timeframe]", "1h")
        await page.fill("#signal-form [name=param-key_value]", "2")
        await page.fill("#signal-form [name=param-ema_period]", "3")
        await page.click("#signal-save")
        await expect(page.locator("#message")).to_contain_text("Config created: ut_bot BTCUSDT 1h")
        row = page.locator("#signal-configs tbody tr")
        await expect(row).to_have_count(1)
        await expect(row.first).to_contain_text("key_value=2")
        await expect(row.first).to_contain_text("ema_period=3")
        await expect(page.locator("#signal-detail")).to_be_visible()
        webhook = await page.locator("#signal-webhook-url").input_value()
        assert "/webhook/tradingview/" in webhook
        await expect(page.locator("#signal-pine")).to_contain_text("//@version=5")
        await expect(page.locator("#signal-pine")).to_contain_text(webhook)
        await page.click("button.copy[data-copy=signal-webhook-url]")
        await expect(page.locator("button.copy[data-copy=signal-webhook-url]")).to_have_attribute("data-copied", "true")
        assert await page.evaluate("navigator.clipboard.readText()") == webhook

        await page.click("#signal-rotate")
        await expect(page.locator("#message")).to_contain_text("New token")
        await expect(page.locator("#signal-webhook-url")).not_to_have_value(webhook)
        rotated = await page.locator("#signal-webhook-url").input_value()
        assert rotated != webhook and rotated.rsplit("/", 1)[0] == webhook.rsplit("/", 1)[0]
        await expect(page.locator("#signal-pine")).to_contain_text(rotated)

        # Another built-in strategy: its own parameters appear in the form.
        await page.click("#signal-new")
        await page.select_option("#signal-form [name=strategy]", "ema_cross")
        await expect(page.locator("#signal-form [name=param-fast]")).to_be_visible()
        await expect(page.locator("#signal-form [name=param-key_value]")).to_have_count(0)
        await page.click("#signal-cancel")

        token = rotated.rsplit("/", 1)[1]
        bar = T0 - T0 % HOUR - HOUR
        async with httpx.AsyncClient(base_url=url) as http:
            old = await http.post(f"/webhook/tradingview/{webhook.rsplit('/', 1)[1]}", content=b"{}")
            assert old.status_code == 401
            bad = await http.post(f"/webhook/tradingview/{token}", content=b"buy BTC now please",
                                  headers={"Content-Type": "text/plain"})
            assert bad.status_code == 400
        await page.click("#tabs button[data-tab=users]")
        await page.click("#tabs button[data-tab=signals]")
        await expect(page.locator("#signal-rejects tbody tr")).to_have_count(1)
        await expect(page.locator("#signal-rejects tbody tr").first).to_contain_text("buy BTC now please")

        # --- the user ---
        user = await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page()
        watch(user, errors)
        await sign_in(user, url, "ana@example.com", PASSWORD, next_path="/signals")
        await expect(user).to_have_url(url + "/signals")
        await expect(user.locator("#site-nav a[href='/signals']")).to_have_attribute("aria-current", "page")
        card = user.locator(".signal-card").first
        await expect(card).to_contain_text("ut_bot BTCUSDT 1h")
        # (the backtest's first run loads the engine: a while on a busy machine)
        await expect(card.locator("[data-figure=trades]")).to_have_text(re.compile(r"^\d+$"), timeout=60_000)
        await expect(card.locator("[data-figure='win rate']")).to_have_text(re.compile(r"^\d+\.\d%$"))
        await expect(card.locator("[data-figure=return]")).to_have_text(re.compile(r"^-?\d+\.\d%$"))
        await expect(card.locator(".checks input")).to_be_checked()  # in-app, made on subscribing
        await card.locator("button[data-action=subscribe]").click()
        await expect(user.locator("#signals-msg")).to_contain_text("Subscribed to ut_bot BTCUSDT 1h")
        await expect(card.locator("button[data-action=unsubscribe]")).to_be_visible()

        async with httpx.AsyncClient(base_url=url) as http:  # TradingView's request, as the README's curl sends it
            sent = await http.post(f"/webhook/tradingview/{token}", headers={"Content-Type": "text/plain"}, content=(
                '{"symbol": "BINANCE:BTCUSDT.P", "timeframe": "60", "action": "buy", "price": 62150.5, '
                f'"time": "{bar}", "strategy": "ut_bot"}}').encode())
            assert sent.status_code == 200 and sent.json()["status"] == "accepted", sent.text
        assert await SignalWorker(runtime.services.signals, runtime.bus).drain() == 1
        await user.reload()
        history = user.locator("#signal-history tbody tr")
        await expect(history).to_have_count(1)
        await expect(history.first).to_contain_text("BUY")
        await expect(history.first).to_contain_text("62150.5")
        await expect(user.locator(".signal-card").first.locator(".recent")).to_contain_text("BUY")

        # The admin's figures count it: one received, one user notified.
        await page.click("#tabs button[data-tab=users]")
        await page.click("#tabs button[data-tab=signals]")
        await page.locator("#signal-configs tbody tr").first.click()
        await expect(page.locator("#signal-stats dd[data-stat='signals received']")).to_have_text("1")
        await expect(page.locator("#signal-stats dd[data-stat='users notified']")).to_have_text("1")
    assert errors == []
