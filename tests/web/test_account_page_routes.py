"""Every account page is served whole under the site's CSP: no inline script, every script and stylesheet it
names exists, and the nav bar's placeholder is on each page of the site (site.js fills it)."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.serving import API_KEY, lifespan  # noqa: I001 (tests/api helpers)
from marketpulse.api.app import create_app
from marketpulse.bus.memory import MemoryBus
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.accounts import authorize

PAGES = ["/signup", "/signin", "/verify", "/forgot-password", "/onboarding", "/settings", "/pricing"]
SITE = [*PAGES, "/", "/alerts", "/paper", "/backtests", "/admin", "/verify-email?token=x", "/reset-password?token=x"]
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S)
ASSET = re.compile(r'(?:src|href)="(/static/[^"]+)"')


@pytest.fixture
async def client(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    db = tmp_path / "routes.db"
    shutil.copy(sqlite_template, db)
    runtime = Runtime.open(Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://",
                                    ingest_api_key=API_KEY, data_dir=tmp_path), bus=MemoryBus())
    app = create_app(runtime)
    transport = httpx.ASGITransport(app=app)
    async with lifespan(app), httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        await authorize(c, runtime)  # /paper is a signed-in user's page (signed out, it redirects to /signin)
        yield c
    await runtime.close()


@pytest.mark.parametrize("path", SITE)
async def test_a_page_runs_under_the_csp_with_the_nav_and_its_assets(client: httpx.AsyncClient, path: str) -> None:
    resp = await client.get(path)
    assert resp.status_code == 200, resp.text
    assert "script-src 'self';" in resp.headers["content-security-policy"]
    for attrs, inline in SCRIPT.findall(resp.text):
        # the only inline <script> a page may carry is JSON data, which the CSP doesn't execute
        assert "src=" in attrs or 'type="application/json"' in attrs, f"inline script in {path}"
        assert "src=" not in attrs or not inline.strip()
    assert 'id="site-nav"' in resp.text and "/static/site.js" in resp.text
    for asset in ASSET.findall(resp.text):
        assert (await client.get(asset)).status_code == 200, asset


@pytest.mark.parametrize("path", PAGES)
async def test_account_pages_are_not_cached(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).headers["cache-control"] == "no-store"
