"""The admin console in headless Chromium: an administrator signs in at /admin, finds a user by search, changes
their plan, and sees the change in the audit-log view; under the site's CSP (no inline script), without errors."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from api.serving import serving  # noqa: I001 (tests/api helpers)
from marketpulse.accounts.core import Role
from marketpulse.api.app import create_app
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.browser import BROWSER_MARKS, new_page, submit_sign_in

from .test_dashboard import T0

pytestmark = BROWSER_MARKS
PASSWORD = "Correct-Horse-9-battery"


@pytest.fixture
async def runtime(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Runtime]:
    db = tmp_path / "admin.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", ingest_api_key="test-key",
                        data_dir=tmp_path, jwt_secret_key="test-jwt-secret-of-at-least-32-bytes!")
    rt = Runtime.open(settings, clock=FakeClock(T0), bus=MemoryBus())
    yield rt
    await rt.close()


async def test_an_admin_finds_a_user_changes_the_plan_and_sees_it_audited(runtime: Runtime, browser: Any) -> None:
    from playwright.async_api import expect

    accounts = runtime.services.accounts
    await accounts.create_user("ops@example.com", PASSWORD, role=Role.ADMIN, verified=True)
    for name in ("alice", "bob", "carol"):
        await accounts.create_user(f"{name}@traders.example", PASSWORD, verified=True)
    target = await accounts.create_user("zoe.target@traders.example", PASSWORD, verified=True)

    async with serving(create_app(runtime)) as url:
        errors: list[str] = []
        page = await new_page(browser, errors, width=1400, console_errors=True)  # CSP refusals are console errors

        await page.goto(url + "/admin")
        await expect(page.locator("#signin")).to_be_visible()
        await submit_sign_in(page, "ops@example.com", PASSWORD)
        await expect(page.locator("#tabs")).to_be_visible()
        await expect(page.locator("#users-table tbody tr")).to_have_count(5)  # every user, the admin too

        await page.fill("#user-filters [name=q]", "TARGET")
        await page.click("#user-filters button[type=submit]")
        rows = page.locator("#users-table tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("zoe.target@traders.example")
        await rows.first.click()
        await expect(page.locator("#detail-email")).to_have_text("zoe.target@traders.example")
        await expect(page.locator("#detail-verified")).to_have_text("yes")
        await page.select_option("#detail-form [name=plan]", "elite")
        await page.click("#detail-save")
        await expect(page.locator("#message")).to_contain_text("plan → elite")
        await expect(rows.first.locator("td").nth(1)).to_have_text("elite")
        assert (await accounts.get_user(target.id)).plan == "elite"  # type: ignore[union-attr]

        await page.click("#tabs button[data-tab=audit]")
        entry = page.locator("#audit-table tbody tr").first
        await expect(entry).to_contain_text("admin.user_updated")
        await expect(entry).to_contain_text(target.id)
        await expect(entry.locator("td").nth(4)).to_have_text('{"plan":"free"}')
        await expect(entry.locator("td").nth(5)).to_have_text('{"plan":"elite"}')

        await page.fill("#audit-filters [name=action]", "auth.")  # searchable: nothing of that kind happened
        await page.click("#audit-filters button[type=submit]")
        await expect(page.locator("#audit-range")).to_have_text("no entries match")

        await page.click("#tabs button[data-tab=metrics]")
        await expect(page.locator("#active-sessions")).to_have_text("1")
        await expect(page.locator("#health")).to_contain_text("database")
    assert errors == []
