"""The tax page in headless Chromium: a signed-in user imports a Coinbase export, runs a 2024 FIFO report and
watches it finish, reads the summary and the lots each disposal used, and downloads Form 8949 as a PDF (read back
with pypdf). Under the site's CSP, with no page error."""

from __future__ import annotations

import io
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from api.serving import serving  # noqa: I001 (tests/api helpers)
from marketpulse.api.app import create_app
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.browser import BROWSER_MARKS, new_page, sign_in
from tax.test_layouts import COINBASE

from .test_dashboard import T0

pytestmark = BROWSER_MARKS
PASSWORD = "Correct-Horse-9-battery"


@pytest.fixture
async def runtime(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Runtime]:
    db = tmp_path / "tax.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", data_dir=tmp_path,
                        jwt_secret_key="test-jwt-secret-of-at-least-32-bytes!")
    rt = Runtime.open(settings, clock=FakeClock(T0), bus=MemoryBus())
    yield rt
    await rt.close()


async def test_import_run_a_report_read_it_and_download_form_8949(browser: Any, runtime: Runtime) -> None:
    from playwright.async_api import expect

    await runtime.services.accounts.create_user("ana@example.com", PASSWORD, verified=True)
    errors: list[str] = []
    async with serving(create_app(runtime)) as url:
        page = await new_page(browser, errors, width=1400, console_errors=True)
        await sign_in(page, url, "ana@example.com", PASSWORD, next_path="/tax")
        await expect(page.locator("#site-nav a[href='/tax']")).to_have_attribute("aria-current", "page")

        await page.set_input_files("#tax-file", files=[{"name": "coinbase.csv", "mimeType": "text/csv",
                                                        "buffer": COINBASE.encode()}])
        await page.click("#tax-import-button")
        await expect(page.locator("#tax-import-result")).to_contain_text(
            "coinbase layout, 7 rows read, 6 transactions imported, 0 duplicates skipped, 1 rows ignored, 1 rejected")
        await expect(page.locator("#tax-import-problems tbody tr").first).to_contain_text("Quantity Transacted")
        await expect(page.locator("#tax-transfers-empty")).to_be_visible()  # the export only sends

        transfers = ("timestamp,type,asset,amount,price_usd,fee_usd,account,tx_id\n"
                     "2024-04-06T10:30:00Z,transfer_in,SOL,0.99,,,phantom,\n")
        await page.set_input_files("#tax-file", files=[{"name": "wallet.csv", "mimeType": "text/csv",
                                                        "buffer": transfers.encode()}])
        await page.click("#tax-import-button")
        received = page.locator("#tax-transfers tbody tr")
        await expect(received).to_have_count(1)
        await expect(received.first).to_contain_text("phantomcoinbase")  # into the wallet, from Coinbase
        await expect(received.first).to_contain_text("auto")
        await page.click("#tax-transfers button[data-undo]")
        await expect(received.first).to_contain_text("unmatched")

        await page.fill("#tax-year", "2024")
        await page.select_option("#tax-method", "fifo")
        await page.click("#tax-report-button")
        await expect(page.locator("#tax-progress-text")).to_have_text("done 100%")
        # Sold 4 SOL (596 net, basis 4 × 101 = 404) and converted 2 SOL (260, basis 202): short-term, 856 − 606.
        await expect(page.locator("#tax-summary tbody tr").nth(2)).to_have_text("Total856.00606.00250.00")
        await expect(page.locator("#tax-lots tbody tr")).to_have_count(2)
        await expect(page.locator("#tax-lots tbody tr").first).to_contain_text("2024-01-05")  # the lot's date
        await expect(page.locator("#tax-reports tbody tr")).to_have_count(1)

        async with page.expect_download() as waiting:
            await page.click("#tax-downloads a[data-file='form8949.pdf']")
        download = await waiting.value
        saved = await download.path()
        text = PdfReader(io.BytesIO(saved.read_bytes())).pages[0].extract_text()  # noqa: ASYNC240 (a test's file)
        assert "Form 8949 (2024)" in text and "4 SOL" in text and "856.00" in text
    assert errors == []
