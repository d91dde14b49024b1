"""Issue 8's "Done when" in headless Chromium (Debian's), on the app as `pulse demo` runs it (PULSE_ENV=dev, mail to
the demo mailbox at /dev/mail, the rule worker and a delivery dispatcher on the same bus and database):

a signed-in user adds an in-app and an email destination on /alerts (the email's code read from /dev/mail), builds
a rule with the form (an OR group, then back to one AND group: no JSON), previews it over the stored history (fire
times and credit cost shown), saves it; the market then crosses the line and the alert arrives in the bell and in
/dev/mail, the credits are charged, the history shows it; the rule is paused, resumed and deleted from the list.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.serving import API_KEY, serving  # noqa: I001 (tests/api helpers)
from marketpulse.api.app import create_app
from marketpulse.bus import topics
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.marketdata.models import MarketRow
from marketpulse.roles import start_dispatcher
from marketpulse.rules.worker import RuleWorker
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.accounts import browser_sign_in

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is missing (make test installs it)"),
]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
T0 = 1_760_126_400_000  # 2025-10-10 20:00 UTC: inside the bundled BTCUSDT minutes the preview replays
CODE = re.compile(r"\b(\d{6})\b")


@pytest.fixture
async def demo(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[tuple[Runtime, str]]:
    from marketpulse.accounts.demo import start_demo_accounts

    db = tmp_path / "demo.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", env="dev",
                        ingest_api_key=API_KEY, data_dir=tmp_path, market_debounce_ms=0,
                        jwt_secret_key="demo-jwt-secret-of-32-bytes-or-more")
    rt = Runtime.open(settings, clock=FakeClock(T0), bus=MemoryBus())
    worker = RuleWorker(rt.services.rules, rt.bus)
    stop_dispatcher = None
    try:
        async with serving(create_app(rt)) as url:
            host, port = url.removeprefix("http://").split(":")
            await start_demo_accounts(rt.services.accounts, host, int(port))
            await worker.start()
            stop_dispatcher = start_dispatcher(rt)
            yield rt, url
    finally:
        if stop_dispatcher is not None:
            await stop_dispatcher()
        await worker.stop()
        await rt.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


def sample_line(end_ms: int) -> float:
    """A BTCUSDT price the bundled minutes of the last day crossed upwards several times (their median close)."""
    import csv
    import gzip

    from marketpulse.marketdata import sample

    with gzip.open(sample.btcusdt_spot_1m_path(), "rt") as f:
        closes = [float(r["close"]) for r in csv.DictReader(f)
                  if end_ms - 86_400_000 <= int(r["open_time_ms"]) < end_ms]
    assert len(closes) > 100
    return round(float(np.median(closes)), 1)


def tick(time_ms: int, price: float) -> topics.TickersEvent:
    return topics.TickersEvent(time_ms, [MarketRow("BTCUSDT", time_ms, price, 0.0, 1e9)])


async def code_from_mailbox(page: Any, url: str, to: str) -> str:
    from playwright.async_api import expect

    await page.goto(url + "/dev/mail")
    mail = page.locator(f".mail[data-to='{to}']")
    await expect(mail).to_have_count(1)
    found = CODE.search(await mail.inner_text())
    assert found, await mail.inner_text()
    return found.group(1)


async def test_a_rule_built_with_the_form_previews_saves_fires_and_is_delivered_and_charged(
        browser: Any, demo: tuple[Runtime, str]) -> None:
    from playwright.async_api import expect

    runtime, url = demo
    errors: list[str] = []
    page = await (await browser.new_context(viewport={"width": 1280, "height": 1000})).new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    email = "trader@example.com"
    who = await browser_sign_in(page, url, runtime, email, plan="elite")  # elite: delivered at once, no batch
    async with runtime.sessions.begin() as s:
        await runtime.services.credits.grant(s, owner_id=who.user_id, amount=10, idempotency_key="test-grant",
                                             reason="test")

    await page.goto(url + "/alerts")
    await expect(page.locator("#site-nav a[href='/alerts']")).to_have_attribute("aria-current", "page")
    await expect(page.locator("#credit-balance")).to_have_text("10")
    # Where alerts go: in-app at once; email confirmed with the code the demo mailbox received.
    await page.select_option("#destination-form [name=channel]", "in_app")
    await page.click("#destination-form button[type=submit]")
    await expect(page.locator("#destination-list tr[data-channel=in_app] .dest-state")).to_have_text("verified")
    await page.select_option("#destination-form [name=channel]", "email")
    await page.fill("#destination-form [name=address]", email)
    await page.click("#destination-form button[type=submit]")
    await expect(page.locator("#destination-msg")).to_contain_text("enter the code")
    mailbox = await page.context.new_page()
    code = await code_from_mailbox(mailbox, url, email)
    await page.fill("#destination-list tr[data-channel=email] .dest-code", code)
    await page.click("#destination-list tr[data-channel=email] button:has-text('Verify')")
    await expect(page.locator("#destination-list tr[data-channel=email] .dest-state")).to_have_text("verified")
    await expect(page.locator("#channel-list input")).to_have_count(2)

    # The rule, built with the form: an OR group added and removed again, then one condition.
    line = sample_line(T0)
    await page.fill("#rule-form [name=name]", "BTC over the line")
    await page.fill("#rule-form [name=symbols]", "btcusdt")
    await page.click("#add-group")
    await expect(page.locator("#groups .cond-group")).to_have_count(2)
    await expect(page.locator("#groups .cond-group-head").nth(1)).to_contain_text("OR group 2")
    await page.locator("#groups .cond-group").nth(1).locator(".cond-remove").click()
    await expect(page.locator("#groups .cond-group")).to_have_count(1)
    row = page.locator("#groups .cond-row").first
    await row.locator(".cond-field").select_option("price")
    await row.locator(".cond-op").select_option("crosses_above")
    await expect(row.locator(".cond-lower")).to_be_hidden()  # a channel's bounds only for channel operators
    await row.locator(".cond-value").fill(str(line))
    for box in await page.locator("#channel-list input").all():
        await box.check()
    await page.select_option("#rule-form [name=frequency]", "every_time")

    await page.fill("#rule-form [name=days]", "1")
    await page.click("#preview-rule")
    await expect(page.locator("#preview")).to_be_visible(timeout=30_000)  # a day of minutes replayed
    fires = int(await page.locator("#preview").get_attribute("data-count") or "0")
    assert fires >= 2  # the median of a day's closes is crossed upwards more than once
    await expect(page.locator("#preview-summary")).to_contain_text(
        f"fired {fires} times, costing {fires} credits (1 per notification")  # email 1 + in-app 0
    await expect(page.locator("#preview-fires tbody tr")).to_have_count(min(fires, 50))
    assert await runtime.services.rules.list_rules(who.user_id) == []  # a preview saves nothing

    await page.click("#save-rule")
    await expect(page.locator("#rule-msg")).to_contain_text("created")
    rule_row = page.locator("#rule-list tbody tr[data-rule-id]")
    await expect(rule_row).to_have_count(1)
    await expect(rule_row).to_contain_text("Last price crosses above")
    (saved,) = await runtime.services.rules.list_rules(who.user_id)
    assert saved.spec["conditions"] == {"all": [{"field": "price", "op": "crosses_above", "value": line}]}
    assert saved.spec["symbols"] == ["BTCUSDT"] and saved.spec["frequency"] == "every_time"

    # The market crosses the line: one alert, in the bell, in the mailbox, charged.
    await runtime.bus.publish(topics.MARKET_TICKERS, tick(T0 + 60_000, line - 50))
    await runtime.bus.publish(topics.MARKET_TICKERS, tick(T0 + 120_000, line + 50))
    await expect(page.locator("#nav-bell-count")).to_have_text("1", timeout=15_000)
    await page.click("#nav-bell-button")
    await expect(page.locator("#nav-bell-menu")).to_contain_text("BTC over the line")
    await expect(page.locator("#history-list tbody tr[data-rule-id]")).to_have_count(1, timeout=10_000)
    await expect(page.locator("#credit-balance")).to_have_text("9", timeout=10_000)
    await mailbox.goto(url + "/dev/mail")
    await expect(mailbox.locator(f".mail[data-to='{email}']")).to_have_count(2)  # the code, then the alert
    await expect(mailbox.locator(f".mail[data-to='{email}']").filter(has_text="BTC over the line")).to_have_count(1)

    async def balance() -> int:
        async with runtime.sessions() as s:
            return await runtime.services.credits.balance(s, who.user_id)

    assert await balance() == 9

    # Pause, resume, delete from the list.
    await rule_row.locator("button[data-action=pause]").click()
    await expect(rule_row).to_have_attribute("data-state", "paused")
    await rule_row.locator("button[data-action=resume]").click()
    await expect(rule_row).to_have_attribute("data-state", "active")
    page.on("dialog", lambda dialog: dialog.accept())
    await rule_row.locator("button[data-action=delete]").click()
    await expect(page.locator("#rule-list tbody tr[data-rule-id]")).to_have_count(0)
    assert await runtime.services.rules.list_rules(who.user_id) == []  # the list redraws after the DELETE answered
    assert errors == []
