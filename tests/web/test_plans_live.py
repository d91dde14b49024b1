"""A plan change seen live in headless Chromium: a free user signed in through the real sign-in (its cookies) sees
the free view (50 rows of 120, no open interest, a countdown to the next alert batch); an administrator makes them
elite through `PATCH /api/v1/admin/users/{id}`; without a reload their table grows to every symbol, and the change
is in the audit log."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.serving import API_KEY, serving  # noqa: I001 (tests/api helpers)
from marketpulse.accounts.core import Role
from marketpulse.accounts.plans import plan_named
from marketpulse.api.app import create_app
from marketpulse.bus import topics
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.waiting import eventually

from .test_dashboard import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is missing (make test installs it)"),
]
T0 = 1_760_126_400_000  # 2025-10-10 20:00 UTC
NOW = T0 + 7 * 60_000 + 30_000  # 20:07:30: the free plan's next batch is at 20:15, 7:30 away
PASSWORD = "Correct-Horse-9-battery"
SYMBOLS = 120  # more than the free plan's 50 and the pro plan's 100


def market() -> list[dict[str, Any]]:
    return [{"symbol": f"C{i:03d}USDT", "time": T0, "price": 1.0 + i, "change_pct_24h": 0.5,
             "quote_volume_24h": 1e9 - i * 1e6, "funding_rate": 0.0001, "open_interest_usd": 7e6}
            for i in range(SYMBOLS)]


@pytest.fixture
async def runtime(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Runtime]:
    db = tmp_path / "plans.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", ingest_api_key=API_KEY,
                        market_debounce_ms=50, data_dir=tmp_path)
    rt = Runtime.open(settings, clock=FakeClock(NOW), bus=MemoryBus())
    yield rt
    await rt.close()


async def test_an_admin_upgrade_grows_the_users_live_table_without_a_reload(runtime: Runtime) -> None:
    from playwright.async_api import async_playwright, expect

    accounts = runtime.services.accounts
    user = await accounts.create_user("trader@example.com", PASSWORD, verified=True)
    await accounts.create_user("ops@example.com", PASSWORD, role=Role.ADMIN, verified=True)
    free = plan_named("free").symbols_in_table
    assert free is not None and free < SYMBOLS
    app = create_app(runtime)
    async with serving(app) as url, async_playwright() as pw, httpx.AsyncClient(base_url=url) as http:
        await runtime.bus.publish(topics.MARKET_TICKERS, {"time": T0, "rows": market()})

        async def table_full() -> bool:
            return len(app.other_asgi_app.state.market_feed.snapshot()) == SYMBOLS

        await eventually(table_full)

        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # The real sign-in, from the page's own context: its cookies (HttpOnly mp_access) are the browser's.
        signin = await page.request.post(url + "/api/v1/auth/signin",
                                         data={"email": "trader@example.com", "password": PASSWORD})
        assert signin.ok, await signin.text()
        await page.goto(url + "/")
        await expect(page.locator("#conn-status")).to_have_attribute("data-state", "connected")
        rows = page.locator("#market-body tr")
        await expect(rows).to_have_count(free)
        await expect(page.locator("#plan-name")).to_have_text("Free")
        # 7:30 from the server's (injected) clock at load, counting down in the browser's time since.
        await expect(page.locator("#batch-countdown")).to_have_text(re.compile(r"^Next alerts in 7:[0-3]\d$"))
        await expect(page.locator("#batch-countdown")).to_have_attribute("data-next-at", str(T0 + 15 * 60_000))
        oi = page.locator("tr[data-symbol='C000USDT'] td[data-col=openInterestUsd]")
        await expect(oi).to_have_text("—")
        await page.evaluate("window.__sameDocument = true")  # gone if the page reloads

        admin = (await http.post("/api/v1/auth/signin",
                                 json={"email": "ops@example.com", "password": PASSWORD})).json()["access_token"]
        headers = {"Authorization": f"Bearer {admin}"}
        patched = await http.patch(f"/api/v1/admin/users/{user.id}", json={"plan": "elite"}, headers=headers)
        assert patched.status_code == 200 and patched.json()["plan"] == "elite", patched.text

        await expect(rows).to_have_count(SYMBOLS)  # every symbol, pushed at once
        await expect(page.locator("#plan-name")).to_have_text("Elite")
        await expect(page.locator("#batch-countdown")).to_have_text("Alerts: instant")
        await expect(oi).to_have_text("$7.0M")
        assert await page.evaluate("window.__sameDocument") is True

        log = (await http.get("/api/v1/admin/audit-log", params={"action": "admin.user_updated",
                                                                 "target_id": user.id}, headers=headers)).json()
        [entry] = log["data"]
        assert (entry["old_values"], entry["new_values"]) == ({"plan": "free"}, {"plan": "elite"})
        assert errors == []
        await browser.close()
