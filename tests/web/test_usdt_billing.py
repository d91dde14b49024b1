"""The Done-when of payments in headless Chromium, as in `pulse demo` (its local fake Stripe and its local chain):
a user upgrades to pro by card, then buys credits with USDT from the billing page (chain and pack → an invoice
with address, exact amount and expiry; the demo wallet pays it and the hash is submitted), and the plan and the
balance change at once, on the billing page and on a dashboard open beside it (no reload)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api.serving import API_KEY, serving  # noqa: I001 (tests/api helpers)
from marketpulse.accounts.core import Role
from marketpulse.api.app import create_app
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.onchain.demo import start_demo_chain
from marketpulse.onchain.devchain import Missing, anvil_binary, token_bytecode
from marketpulse.payments.demo import start_demo_payments
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.browser import live_dashboard, submit_sign_in
from support.chain import NODE_MODULES

from .test_dashboard import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is missing (make test installs it)"),
]
PASSWORD = "Correct-Horse-9-battery"


@pytest.fixture
async def runtime(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Runtime]:
    try:
        anvil_binary(NODE_MODULES)
        token_bytecode(NODE_MODULES)
    except Missing as exc:
        pytest.skip(str(exc))
    db = tmp_path / "usdt.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", ingest_api_key=API_KEY,
                        data_dir=tmp_path, rate_limits="off", node_modules_dir=NODE_MODULES)
    # The chain's blocks carry wall-clock times, and an invoice's expiry is judged by them.
    rt = Runtime.open(settings, clock=FakeClock(int(time.time() * 1000)), bus=MemoryBus())
    yield rt
    await rt.close()


async def test_upgrade_by_card_then_buy_credits_with_usdt_plan_and_balance_change_at_once(runtime: Runtime) -> None:
    from playwright.async_api import async_playwright, expect

    await runtime.services.accounts.create_user("both@example.com", PASSWORD, verified=True)
    await runtime.services.accounts.create_user("ops@example.com", PASSWORD, role=Role.ADMIN, verified=True)
    app = create_app(runtime)
    async with serving(app) as url, async_playwright() as pw:
        port = int(url.rsplit(":", 1)[1])
        runtime.settings.public_url = url
        assert await start_demo_payments(runtime.services.payments, "127.0.0.1", port) is not None
        assert await start_demo_chain(runtime) is not None
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        dashboard = await live_dashboard(context, url, "both@example.com", PASSWORD, errors)
        await expect(dashboard.locator("#plan-name")).to_have_text("Free")

        # By card: /pricing → the fake Stripe's checkout → Pay → back, and the dashboard turns Pro at once.
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(url + "/pricing")
        await page.locator("tr[data-product=pro] [data-pay=card]").click()
        await page.wait_for_url(f"{runtime.settings.stripe_api_base}/pay/*")
        await page.locator("#pay").click()
        await page.wait_for_url(f"{url}/checkout/success?session_id=*")
        await expect(page.locator("#checkout-plan")).to_have_text("pro")
        await expect(dashboard.locator("#plan-name")).to_have_text("Pro")

        # In USDT: /pricing's USDT way for a pack lands on the billing form with the pack chosen.
        await page.goto(url + "/pricing")
        await page.locator("tr[data-product=credits_100] [data-pay=usdt]").click()
        await page.wait_for_url(f"{url}/settings?pay=usdt&product=credits_100#billing")
        await expect(page.locator("#usdt-form")).to_be_visible()
        await expect(page.locator("#usdt-product")).to_have_value("credit_pack:credits_100")
        await expect(page.locator("#billing-credits")).to_have_text(re.compile(r"^[\d,]+$"))  # "—" until loaded
        before = int((await page.locator("#billing-credits").inner_text()).replace(",", "") or 0)
        await page.locator("#usdt-create").click()
        await expect(page.locator("#usdt-status")).to_have_text("pending")
        amount = await page.locator("#usdt-amount").inner_text()
        assert amount.startswith("10.00") and len(amount.split(".")[1]) == 6  # $10 plus a unique offset
        assert (await page.locator("#usdt-address").inner_text()) == runtime.settings.usdt_chains["local"] \
            .receiving_address
        await page.locator("#usdt-demo-pay").click()  # the demo wallet sends it; the hash is submitted
        await expect(page.locator("#usdt-status")).to_have_text("paid")
        await expect(page.locator("#billing-credits")).to_have_text(f"{before + 100:,}")
        await expect(page.locator("#usdt-list tbody tr").first).to_have_attribute("data-status", "paid")
        await expect(page.locator("#billing-plan")).to_have_text("pro")
        assert await dashboard.evaluate("window.__sameDocument") is True

        # The administrator's Payments tab lists both, newest first.
        admin = await browser.new_page(viewport={"width": 1400, "height": 900})
        admin.on("pageerror", lambda exc: errors.append(str(exc)))
        await admin.goto(url + "/admin")
        await submit_sign_in(admin, "ops@example.com", PASSWORD)
        await admin.click("#tabs button[data-tab=payments]")
        rows = admin.locator("#payments-table tbody tr")
        await expect(rows).to_have_count(2)
        await expect(rows.nth(0)).to_have_attribute("data-kind", "usdt_invoice")
        await expect(rows.nth(0)).to_contain_text("paid")
        await expect(rows.nth(1)).to_have_attribute("data-kind", "card_invoice")
        assert errors == []
        await browser.close()
