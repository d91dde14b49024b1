"""Security headers on pages and API answers; the Host check in front of FastAPI and Socket.IO; the pages still
work in Chromium under the Content-Security-Policy (no violation reported, their scripts run)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from marketpulse.api.app import create_app
from marketpulse.api.headers import DOCS_POLICY, PAGE_POLICY, REPORT_POLICY, trusted_hosts
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.accounts import browser_sign_in

from .serving import API_KEY, lifespan, serving

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.mark.parametrize("path", ["/", "/paper", "/backtests", "/api/v1/market/data", "/static/dashboard.js",
                                  "/health/live", "/nowhere", "/api/v1/paper/orders/missing"])
async def test_every_answer_carries_the_security_headers(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.headers["content-security-policy"] == PAGE_POLICY
    assert "frame-ancestors 'none'" in PAGE_POLICY and "script-src 'self';" in PAGE_POLICY  # no inline script
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"


async def test_docs_and_reports_get_the_policy_they_need(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-security-policy"] == DOCS_POLICY
    assert "/vendor/swagger-ui-bundle.js" in docs.text and "https://" not in DOCS_POLICY  # offline: from npm
    assert "'unsafe-inline'" not in DOCS_POLICY.split("script-src")[1].split(";")[0]  # no inline script
    redoc = await client.get("/redoc")
    assert redoc.status_code == 200 and redoc.headers["content-security-policy"] == DOCS_POLICY
    assert "/vendor/redoc.standalone.js" in redoc.text
    report = await client.get("/api/v1/backtests/some-id/report")
    assert report.headers["content-security-policy"] == REPORT_POLICY
    assert report.headers["x-frame-options"] == "SAMEORIGIN"  # the /backtests page frames it


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.evil.example", "localhost.evil.example:8000"])
async def test_an_unknown_host_is_refused_before_any_route(app: object, host: str) -> None:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
        for path in ("/api/v1/market/data", "/", "/socket.io/?EIO=4&transport=polling"):
            r = await c.get(path, headers={"Host": host})
            assert r.status_code == 400 and r.text == "Invalid host header", path


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000"])
async def test_the_default_hosts_are_answered_also_on_socket_io(app: object, host: str) -> None:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
        assert (await c.get("/api/v1/market/data", headers={"Host": host})).status_code == 200
        assert (await c.get("/socket.io/?EIO=4&transport=polling", headers={"Host": host})).status_code == 200


def test_trusted_hosts_setting_and_the_bound_address() -> None:
    assert trusted_hosts(Settings()) == ["127.0.0.1", "localhost", "[::1]"]
    assert trusted_hosts(Settings(trusted_hosts="api.example.com, *.example.org", host="10.0.0.5")) == [
        "api.example.com", "*.example.org", "10.0.0.5"]
    assert trusted_hosts(Settings(trusted_hosts="localhost", host="0.0.0.0")) == ["localhost"]


async def test_a_configured_host_is_answered_and_star_answers_any(runtime: Runtime) -> None:
    for setting, host, expected in [("api.example.com", "api.example.com", 200), ("api.example.com", "localhost", 400),
                                    ("*", "anything.example", 200)]:
        runtime.settings = runtime.settings.model_copy(update={"trusted_hosts": setting})
        app = create_app(runtime)
        async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                    base_url=f"http://{host}") as c:
            assert (await c.get("/health/live")).status_code == expected, (setting, host)


@pytest.fixture
async def browser_runtime(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Runtime]:
    db = tmp_path / "web.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", ingest_api_key=API_KEY,
                        data_dir=tmp_path)
    rt = Runtime.open(settings, clock=FakeClock(1_760_130_000_000), bus=MemoryBus())
    yield rt
    await rt.close()


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is missing (make test installs it)")
async def test_the_pages_run_in_chromium_under_the_policy(browser_runtime: Runtime) -> None:
    from playwright.async_api import async_playwright, expect

    async with serving(create_app(browser_runtime)) as url, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = await browser.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("console", lambda msg: problems.append(msg.text) if "Content Security Policy" in msg.text else None)
        # Each page proves its own script ran: the dashboard connects, /paper and /backtests fill their forms.
        await page.goto(url + "/")
        await expect(page.locator("#conn-status")).to_have_attribute("data-state", "connected")
        await browser_sign_in(page, url, browser_runtime)  # /paper and /backtests are a signed-in user's
        await page.goto(url + "/paper")
        await expect(page.locator("#conn-status")).to_have_attribute("data-state", "live")
        await page.goto(url + "/backtests")
        await expect(page.locator("#strategy option")).not_to_have_count(0)
        await expect(page.locator("#params .param").first).to_be_attached()
        await browser.close()
    assert problems == []
