"""Google and passkey sign-in in headless Chromium (Debian's) against the real app under uvicorn: the sign-in page's
Google button through a local fake OpenID provider and back, signed in; a passkey made in settings by Chromium's
virtual authenticator (DevTools WebAuthn domain), then used for a passwordless sign-in and as the second factor
after the password.

Browsers refuse IP addresses as WebAuthn RP ids, so the site is browsed at `localhost` (as the README says).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from pydantic import SecretStr

from accounts.conftest import STRONG  # noqa: I001 (tests/accounts helpers)
from api.serving import API_KEY, serving
from fakes.oidc_provider import FakeAccount, FakeOidcProvider
from marketpulse.api.app import create_app
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.browser import BROWSER_MARKS, new_page, submit_sign_in

pytestmark = BROWSER_MARKS
T0 = 1_760_126_400_000
CLIENT_ID = "pages-test.apps.googleusercontent.com"


@pytest.fixture
async def idp() -> AsyncIterator[FakeOidcProvider]:
    async with FakeOidcProvider.start(FakeClock(T0), client_id=CLIENT_ID, client_secret="pages-secret") as provider:
        yield provider


@pytest.fixture
async def runtime(sqlite_template: Path, tmp_path: Path, idp: FakeOidcProvider) -> AsyncIterator[Runtime]:
    db = tmp_path / "sso.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", ingest_api_key=API_KEY,
                        data_dir=tmp_path, jwt_secret_key="sso-pages-jwt-secret-of-at-least-32-bytes!",
                        google_client_id=CLIENT_ID, google_client_secret=SecretStr("pages-secret"),
                        google_discovery_url=idp.discovery_url)
    rt = Runtime.open(settings, clock=FakeClock(T0), bus=MemoryBus())
    yield rt
    await rt.close()


@pytest.fixture
async def site(runtime: Runtime) -> AsyncIterator[str]:
    async with serving(create_app(runtime)) as url:
        url = url.replace("127.0.0.1", "localhost")
        runtime.settings.public_url = url  # the Google redirect URI and the passkeys' origin and RP id
        yield url


async def test_google_button_signs_a_new_user_in_through_the_provider(browser: Any, site: str, runtime: Runtime,
                                                                      idp: FakeOidcProvider) -> None:
    from playwright.async_api import expect

    idp.user = FakeAccount(sub="pages-sub-1", email="goog@gmail.com")
    errors: list[str] = []
    page = await new_page(browser, errors)
    await page.goto(site + "/signin")
    await page.click("#signin-google")
    await expect(page).to_have_url(site + "/onboarding")  # via the provider and the callback
    me = await page.request.get(site + "/api/v1/auth/me")
    assert me.status == 200 and (await me.json())["email"] == "goog@gmail.com"
    user = await runtime.services.accounts.find_user("goog@gmail.com")
    assert user is not None and user.plan == "free" and user.verified_at_ms is not None
    assert errors == []


async def test_a_passkey_made_in_settings_signs_in_without_a_password(browser: Any, site: str,
                                                                      runtime: Runtime) -> None:
    from playwright.async_api import expect

    await runtime.services.accounts.create_user("keyed@example.com", STRONG, verified=True)
    errors: list[str] = []
    page = await new_page(browser, errors)
    devtools = await page.context.new_cdp_session(page)
    await devtools.send("WebAuthn.enable")
    await devtools.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})

    await page.goto(site + "/signin?next=/settings")
    await submit_sign_in(page, "keyed@example.com", STRONG)
    await expect(page).to_have_url(site + "/settings")
    await page.click("#passkey-register")
    await expect(page.locator("#passkey-msg")).to_have_text("Passkey added.")
    await expect(page.locator("#passkey-list tbody tr")).to_have_count(1)

    await page.click("#site-nav [data-nav=signout]")
    await expect(page).to_have_url(re.compile(r"/signin"))
    await page.click("#signin-passkey")  # passwordless: the browser offers the passkey it holds for the site
    await expect(page).to_have_url(site + "/")
    await expect(page.locator("#site-nav .who")).to_have_text("keyed@example.com")

    await page.context.clear_cookies()  # signed out (the dashboard's own sign-out is the pages' to test)
    await page.goto(site + "/signin")
    await submit_sign_in(page, "keyed@example.com", STRONG)
    await expect(page.locator("#second-factor-step")).to_be_visible()  # the passkey is the second factor now
    await page.click("#second-factor-passkey")
    await expect(page).to_have_url(site + "/")
    await expect(page.locator("#site-nav .who")).to_have_text("keyed@example.com")
    assert errors == []


async def test_google_hands_a_two_factor_user_to_the_second_step(browser: Any, site: str, runtime: Runtime,
                                                                 idp: FakeOidcProvider) -> None:
    from playwright.async_api import expect

    accounts, clock = runtime.services.accounts, runtime.clock
    assert isinstance(clock, FakeClock)
    user = await accounts.create_user("both@example.com", STRONG, verified=True)
    secret, _ = await accounts.totp.enrol(user)
    await accounts.totp.confirm(user.id, pyotp.TOTP(secret).at(clock.now_ms() // 1000))
    clock.advance(30_000)  # the confirming code's step is spent
    idp.user = FakeAccount(sub="pages-sub-2", email="both@example.com")
    errors: list[str] = []
    page = await new_page(browser, errors)
    await page.goto(site + "/signin")
    await page.click("#signin-google")
    await expect(page.locator("#second-factor-step")).to_be_visible()
    assert "second_factor" not in page.url  # the page took the challenge out of the address bar
    me = await page.request.get(site + "/api/v1/auth/me")
    assert me.status == 401  # Google alone was only the first factor
    await page.fill("#second-factor-form [name=code]", pyotp.TOTP(secret).at(clock.now_ms() // 1000))
    await page.click("#second-factor-form button[type=submit]")
    await expect(page).to_have_url(site + "/")
    await expect(page.locator("#site-nav .who")).to_have_text("both@example.com")
    assert errors == []
