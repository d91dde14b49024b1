"""Upgrading to pro by card in headless Chromium against the local fake Stripe, as in `pulse demo`: /pricing's
"Pay by card" opens the fake's checkout page, its "Pay" sends the signed webhooks to the server under test, the
browser lands on /checkout/success, and a dashboard open in another tab turns pro without reloading; the billing
section of /settings shows the subscription and its invoice. Buying credits shows the new balance; the admin
console shows the purchase and refunds it, and the credits leave."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api.serving import API_KEY, serving  # noqa: I001 (tests/api helpers)
from marketpulse.accounts.core import Role
from marketpulse.api.app import create_app
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.payments.demo import start_demo_payments
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.browser import live_dashboard, submit_sign_in

from .test_dashboard import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is missing (make test installs it)"),
]
PASSWORD = "Correct-Horse-9-battery"


@pytest.fixture
async def runtime(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Runtime]:
    db = tmp_path / "pay.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", ingest_api_key=API_KEY,
                        data_dir=tmp_path, rate_limits="off")
    rt = Runtime.open(settings, clock=FakeClock(1_760_126_400_000), bus=MemoryBus())
    yield rt
    await rt.close()


async def test_a_user_upgrades_to_pro_by_card_and_buys_credits(runtime: Runtime) -> None:
    from playwright.async_api import async_playwright, expect

    await runtime.services.accounts.create_user("card@example.com", PASSWORD, verified=True)
    await runtime.services.accounts.create_user("ops@example.com", PASSWORD, role=Role.ADMIN, verified=True)
    app = create_app(runtime)
    async with serving(app) as url, async_playwright() as pw:
        port = int(url.rsplit(":", 1)[1])
        runtime.settings.public_url = url
        assert await start_demo_payments(runtime.services.payments, "127.0.0.1", port) is not None
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        dashboard = await live_dashboard(context, url, "card@example.com", PASSWORD, errors)
        await expect(dashboard.locator("#plan-name")).to_have_text("Free")

        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(url + "/pricing")
        usdt = page.locator("tr[data-product=pro] [data-pay=usdt]")
        await expect(usdt).to_have_attribute("href", "/settings?pay=usdt&product=pro#billing")
        await page.locator("tr[data-product=pro] [data-pay=card]").click()
        await page.wait_for_url(f"{runtime.settings.stripe_api_base}/pay/*")
        await page.locator("#pay").click()
        await page.wait_for_url(f"{url}/checkout/success?session_id=*")
        await expect(page.locator("#checkout-plan")).to_have_text("pro")

        await expect(dashboard.locator("#plan-name")).to_have_text("Pro")  # told live, no reload
        assert await dashboard.evaluate("window.__sameDocument") is True

        await page.goto(url + "/settings#billing")
        await expect(page.locator("#billing-plan")).to_have_text("pro")
        await expect(page.locator("#billing-status")).to_have_text("active (pro)")
        await expect(page.locator("#invoice-list tbody tr")).to_have_count(1)
        await expect(page.locator("#invoice-list tbody tr")).to_contain_text("29.00 USD")

        await page.locator("[data-credit-pack=credits_1000]").click()
        await page.wait_for_url(f"{runtime.settings.stripe_api_base}/pay/*")
        await page.locator("#pay").click()
        await page.wait_for_url(f"{url}/checkout/success?session_id=*")
        await expect(page.locator("#checkout-credits")).to_have_text("1,000")

        await page.goto(url + "/checkout/cancel")
        await expect(page.locator("#checkout")).to_contain_text("nothing was charged")

        # The administrator sees the purchase in the user's details and refunds it: the credits leave.
        admin = await browser.new_page(viewport={"width": 1400, "height": 900})
        admin.on("pageerror", lambda exc: errors.append(str(exc)))
        admin.on("dialog", lambda dialog: dialog.accept())
        await admin.goto(url + "/admin")
        await submit_sign_in(admin, "ops@example.com", PASSWORD)
        await admin.fill("#user-filters [name=q]", "card@")
        await admin.click("#user-filters button[type=submit]")
        await expect(admin.locator("#users-table tbody tr")).to_have_count(1)
        await admin.locator("#users-table tbody tr").first.click()
        await expect(admin.locator("#detail-billing")).to_contain_text("active (pro)")
        await expect(admin.locator("#detail-billing")).to_contain_text("credits 1000")
        purchase = admin.locator("#detail-purchases tbody tr")
        await expect(purchase).to_have_count(1)
        await purchase.locator("button").click()
        await expect(admin.locator("#detail-billing")).to_contain_text("credits 0")
        await expect(purchase.locator("button")).to_be_disabled()
        await page.goto(url + "/settings#billing")
        await expect(page.locator("#billing-credits")).to_have_text("0")
        await expect(page.locator("#purchase-list tbody tr")).to_contain_text("1,000")
        assert errors == []
        await browser.close()
