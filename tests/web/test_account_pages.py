"""The account pages in headless Chromium (Debian's), against the real app under uvicorn with a local SMTP sink:
sign-up → the mailed link → confirm → onboarding → dashboard; a TOTP second factor set up in settings then asked
at sign-in; API keys created and revoked in settings; the pricing page rendered from the plan table; the nav.

The verification link is read out of the mail the app really sent (the aiosmtpd sink tests/accounts use).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import base58
import httpx
import pyotp
import pytest
from aiosmtpd.controller import Controller

from accounts.conftest import STRONG, Sink  # noqa: I001 (tests/accounts helpers)
from api.serving import API_KEY, free_port, serving
from marketpulse.accounts.core import Role
from marketpulse.accounts.plans import plan_named, plans_json
from marketpulse.api.app import create_app
from marketpulse.bus import topics
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.browser import BROWSER_MARKS, new_page, sign_in
from support.waiting import eventually

pytestmark = BROWSER_MARKS
T0 = 1_760_126_400_000
LINK = re.compile(r"https?://\S+/verify-email\?token=\S+")


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    mails, port = Sink(), free_port()
    controller = Controller(mails, hostname="127.0.0.1", port=port)
    controller.start()
    yield mails, port
    controller.stop()


@pytest.fixture
async def runtime(sqlite_template: Path, tmp_path: Path, sink: tuple[Sink, int]) -> AsyncIterator[Runtime]:
    db = tmp_path / "pages.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", ingest_api_key=API_KEY,
                        data_dir=tmp_path, smtp_host="127.0.0.1", smtp_port=sink[1],
                        jwt_secret_key="pages-jwt-secret-of-at-least-32-bytes!", market_debounce_ms=50)
    rt = Runtime.open(settings, clock=FakeClock(T0), bus=MemoryBus())
    yield rt
    await rt.close()


@pytest.fixture
def app(runtime: Runtime) -> Any:
    return create_app(runtime)


@pytest.fixture
async def site(runtime: Runtime, app: Any) -> AsyncIterator[str]:
    async with serving(app) as url:
        runtime.settings.public_url = url  # mailed links lead back to this server
        yield url


def market(symbols: int) -> list[dict[str, Any]]:
    return [{"symbol": f"C{i:03d}USDT", "time": T0, "price": 1.0 + i, "change_pct_24h": 0.5,
             "quote_volume_24h": 1e9 - i * 1e6, "funding_rate": 0.0001, "open_interest_usd": 7e6}
            for i in range(symbols)]


async def test_sign_up_verify_by_mail_onboard_and_land_on_the_dashboard(browser: Any, site: str, runtime: Runtime,
                                                                        app: Any, sink: tuple[Sink, int]) -> None:
    from playwright.async_api import expect

    free = plan_named("free").symbols_in_table
    assert free is not None
    everything = free + 30  # more symbols than the free view shows
    await runtime.bus.publish(topics.MARKET_TICKERS, {"time": T0, "rows": market(everything)})
    await eventually(lambda: len(app.other_asgi_app.state.market_feed.snapshot()) == everything)
    errors: list[str] = []
    page = await new_page(browser, errors)
    await page.goto(site + "/signup")
    await page.fill("#signup-form [name=email]", "newbie@example.com")
    await page.fill("#signup-form [name=password]", "no-upper-case-42")
    await page.click("#signup-form button[type=submit]")
    await expect(page.locator("#signup-msg")).to_contain_text("upper-case")  # the rule, named by the server
    await page.fill("#signup-form [name=password]", STRONG)
    await page.click("#signup-form button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/verify\?email=newbie%40example\.com$"))
    await expect(page.locator("#verify-email")).to_have_text("newbie@example.com")

    body = sink[0].to("newbie@example.com")[-1].get_payload(decode=True)
    assert isinstance(body, bytes)
    found = LINK.search(body.decode())
    assert found, body
    await page.goto(found.group(0))
    await page.click("button:has-text('Confirm my address')")
    await expect(page.locator("h1")).to_have_text("Address confirmed")
    await page.click("main a:has-text('Sign in')")
    await expect(page).to_have_url(re.compile(r"/signin\?next=/onboarding$"))
    await page.fill("#signin-form [name=email]", "newbie@example.com")
    await page.fill("#signin-form [name=password]", STRONG)
    await page.click("#signin-form button[type=submit]")

    await expect(page).to_have_url(site + "/onboarding")
    await expect(page.locator(".plan-card")).to_have_count(len(plans_json()))
    await expect(page.locator(".plan-card.chosen")).to_have_attribute("data-plan", "free")
    await page.click(".plan-card[data-plan=pro]")
    await expect(page.locator("#plan-msg")).to_contain_text("Checkout for Pro comes later")
    await page.click("#plan-next")
    await page.fill("#watchlist-form [name=name]", "Majors")
    await page.fill("#watchlist-form [name=symbols]", "BTCUSDT, ethusdt")
    await page.click("#watchlist-form button[type=submit]")
    await expect(page.locator("#prefs-form")).to_be_visible()
    lists = (await (await page.request.get(site + "/api/v1/watchlist")).json())["data"]
    assert [(w["name"], w["symbols"]) for w in lists] == [("Majors", ["BTCUSDT", "ETHUSDT"])]
    await page.fill("#prefs-form [name=time_zone]", "Europe/Berlin")
    await page.fill("#prefs-form [name=quiet_hours_start]", "22:00")
    await page.fill("#prefs-form [name=quiet_hours_end]", "07:00")
    await expect(page.locator("#prefs-form input[value=telegram]")).to_be_disabled()  # not on the free plan
    await page.click("#prefs-form button[type=submit]")
    await expect(page.locator("#prefs-msg")).to_contain_text("Saved")
    user = await runtime.services.accounts.find_user("newbie@example.com")
    assert user is not None and user.plan == "free"
    prefs = await runtime.services.accounts.preferences.get(user.id)
    assert (prefs.time_zone, prefs.quiet_hours_start, prefs.quiet_hours_end) == ("Europe/Berlin", "22:00", "07:00")

    await page.click("#onboarding-done")
    await expect(page).to_have_url(site + "/")
    await expect(page.locator("#site-nav")).to_have_attribute("data-state", "signed-in")
    await expect(page.locator("#site-nav .who")).to_have_text("newbie@example.com")
    # the free view: the plan's symbol count of the table (top by volume) and no open interest
    await expect(page.locator("#plan-name")).to_have_text("Free")
    await expect(page.locator("#market-body tr")).to_have_count(free)
    await expect(page.locator("#market-body tr").first).to_have_attribute("data-symbol", "C000USDT")
    await expect(page.locator("tr[data-symbol='C000USDT'] td[data-col=openInterestUsd]")).to_have_text("—")
    await expect(page.locator("th[data-sort=openInterestUsd]")).to_have_class(re.compile(r"\blocked\b"))
    assert errors == []


async def test_two_factor_set_up_in_settings_is_asked_at_the_next_sign_in(browser: Any, site: str,
                                                                          runtime: Runtime) -> None:
    from playwright.async_api import expect

    clock = runtime.clock
    assert isinstance(clock, FakeClock)
    await runtime.services.accounts.create_user("careful@example.com", STRONG, verified=True)
    errors: list[str] = []
    page = await new_page(browser, errors)
    await sign_in(page, site, "careful@example.com", STRONG, "/settings")
    await expect(page).to_have_url(site + "/settings")
    await expect(page.locator("#two-factor-state")).to_have_text("off")
    await expect(page.locator("#totp-disable-form")).to_be_hidden()  # nothing to turn off yet
    await page.click("#totp-enrol")
    await expect(page.locator("#totp-secret")).to_have_text(re.compile(r"^[A-Z2-7]{16,}$"))
    secret = (await page.locator("#totp-secret").text_content() or "").strip()
    assert (await page.locator("#totp-uri").text_content() or "").startswith("otpauth://totp/")
    totp = pyotp.TOTP(secret)
    await page.fill("#totp-confirm-form [name=code]", totp.at(clock.now_ms() // 1000))
    await page.click("#totp-confirm-form button[type=submit]")
    await expect(page.locator("#totp-msg")).to_have_text("Two-factor is on.")
    await expect(page.locator("#recovery-box")).to_be_visible()
    codes = (await page.locator("#recovery-codes").text_content() or "").split()
    assert len(codes) == 10
    await expect(page.locator("#two-factor-state")).to_have_text("on")  # the page re-read /auth/me
    await expect(page.locator("#totp-enrol")).to_be_hidden()
    await expect(page.locator("#totp-disable-form")).to_be_visible()

    await page.click("#site-nav [data-nav=signout]")
    await expect(page).to_have_url(site + "/signin")
    await sign_in(page, site, "careful@example.com", STRONG)
    await expect(page.locator("#second-factor-step")).to_be_visible()
    await page.fill("#second-factor-form [name=code]", "000000" if totp.at(clock.now_ms() // 1000) != "000000"
                    else "111111")
    await page.click("#second-factor-form button[type=submit]")
    await expect(page.locator("#second-factor-msg")).not_to_be_empty()  # a wrong code: still on the step
    await expect(page).to_have_url(re.compile(r"/signin"))
    clock.advance(30_000)  # the confirming code's step is spent: the next step's code
    await page.fill("#second-factor-form [name=code]", totp.at(clock.now_ms() // 1000))
    await page.click("#second-factor-form button[type=submit]")
    await expect(page).to_have_url(site + "/")
    await expect(page.locator("#site-nav .who")).to_have_text("careful@example.com")

    await page.goto(site + "/settings")  # a fresh load shows the stored state, then turning it off flips it back
    await expect(page.locator("#two-factor-state")).to_have_text("on")
    await expect(page.locator("#totp-enrol")).to_be_hidden()
    await page.fill("#totp-disable-form [name=code]", codes[0])
    await page.click("#totp-disable-form button[type=submit]")
    await expect(page.locator("#totp-msg")).to_have_text("Two-factor is off.")
    await expect(page.locator("#two-factor-state")).to_have_text("off")
    await expect(page.locator("#totp-enrol")).to_be_visible()
    await expect(page.locator("#totp-disable-form")).to_be_hidden()
    user = await runtime.services.accounts.find_user("careful@example.com")
    assert user is not None and not await runtime.services.accounts.totp.enabled(user.id)
    assert errors == []


async def test_api_keys_are_created_shown_once_and_revoked_in_settings(browser: Any, site: str,
                                                                       runtime: Runtime) -> None:
    from playwright.async_api import expect

    await runtime.services.accounts.create_user("bot@example.com", STRONG, verified=True)
    errors: list[str] = []
    page = await new_page(browser, errors)
    await sign_in(page, site, "bot@example.com", STRONG, "/settings")
    await expect(page).to_have_url(site + "/settings")
    await page.fill("#key-form [name=name]", "my bot")
    await page.check("#key-form input[value=trade]")
    await page.click("#key-form button[type=submit]")
    await expect(page.locator("#new-key-box")).to_be_visible()
    key = (await page.locator("#new-key").text_content() or "").strip()
    row = page.locator("#key-list tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("my bot")
    await expect(row).to_contain_text("read, trade")
    assert key not in (await row.text_content() or "")  # the list shows the prefix, never the secret
    async with httpx.AsyncClient(base_url=site) as http:
        assert (await http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {key}"})).status_code == 200
        await row.locator("button:has-text('Revoke')").click()
        await expect(page.locator("#key-list tbody tr")).to_have_count(0)
        await expect(page.locator("#key-msg")).to_contain_text("revoked")
        assert (await http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {key}"})).status_code == 401
    await page.reload()  # shown once: a fresh page has the list only
    await expect(page.locator("#new-key-box")).to_be_hidden()
    assert errors == []


async def test_pricing_renders_every_row_of_the_plan_table(browser: Any, site: str) -> None:
    from playwright.async_api import expect

    errors: list[str] = []
    page = await new_page(browser, errors)
    await page.goto(site + "/pricing")
    plans = plans_json()
    await expect(page.locator("#plan-table thead th")).to_have_count(len(plans) + 1)
    fields = [k for k in plans[0] if k not in ("name", "title")]
    await expect(page.locator("#plan-table tbody tr")).to_have_count(len(fields))
    assert [await th.text_content() for th in await page.locator("#plan-table thead th").all()][1:] == \
        [p["title"] for p in plans]
    symbols = page.locator("#plan-table tr[data-row=symbols_in_table] td")
    await expect(symbols).to_have_text(["Symbols in the live table", "50", "100", "Unlimited", "Unlimited"])
    await expect(page.locator("#plan-table tr[data-row=open_interest_column] td")).to_have_text(
        ["Open-interest column", "—", "✓", "✓", "✓"])
    await expect(page.locator("#plan-table tr[data-row=price_per_month_usd] td")).to_have_text(
        ["Price per month", "Free", "$29", "$99", "Contact us"])
    assert errors == []


async def test_every_page_has_the_nav_with_the_sign_in_state(browser: Any, site: str, runtime: Runtime) -> None:
    from playwright.async_api import expect

    await runtime.services.accounts.create_user("boss@example.com", STRONG, role=Role.ADMIN, verified=True)
    errors: list[str] = []
    page = await new_page(browser, errors)
    pages = ["/", "/paper", "/backtests", "/pricing", "/portfolio", "/signin", "/signup", "/forgot-password", "/verify",
             "/admin"]
    for path in pages:
        await page.goto(site + path)
        nav = page.locator("#site-nav")
        await expect(nav).to_have_attribute("data-state", "anonymous")
        await expect(nav.locator("a")).to_have_text(["Market", "Alerts", "Signals", "Paper", "Backtests", "Portfolio",
                                                     "Tax", "Pricing", "Sign in", "Sign up"])
    await sign_in(page, site, "boss@example.com", STRONG)
    await expect(page).to_have_url(site + "/")
    for path in ["/", "/paper", "/backtests", "/pricing", "/settings", "/admin"]:
        await page.goto(site + path)
        nav = page.locator("#site-nav")
        await expect(nav).to_have_attribute("data-state", "signed-in")
        await expect(nav.locator("[data-nav=admin]")).to_have_attribute("href", "/admin")
        await expect(nav.locator("a[aria-current=page]")).to_have_count(1)
    # the dashboard's busy top bar (stats, plan, countdown) leaves the nav's sign-out reachable, even when narrow
    await page.set_viewport_size({"width": 1000, "height": 700})
    await page.goto(site + "/")
    await expect(page.locator("#plan-name")).to_have_text("Free")
    await page.click("#site-nav [data-nav=signout]")
    await expect(page).to_have_url(site + "/signin")
    await expect(page.locator("#site-nav")).to_have_attribute("data-state", "anonymous")
    assert errors == []


async def test_sign_in_methods_without_a_wallet_or_server_support_say_so(browser: Any, site: str) -> None:
    from playwright.async_api import expect

    errors: list[str] = []
    page = await new_page(browser, errors)
    await page.goto(site + "/signin")
    await page.click("#signin-ethereum")
    await expect(page.locator("#other-msg")).to_contain_text("No Ethereum wallet found")
    await page.click("#signin-solana")
    await expect(page.locator("#other-msg")).to_contain_text("No Solana wallet found")
    await page.click("#signin-google")
    await expect(page.locator("#other-msg")).to_contain_text("Google sign-in isn't set up")
    await page.fill("#signin-form [name=email]", "nobody@example.com")
    await page.fill("#signin-form [name=password]", STRONG)
    await page.click("#signin-form button[type=submit]")
    await expect(page.locator("#signin-msg")).not_to_be_empty()
    await expect(page).to_have_url(site + "/signin")
    assert errors == []


# A stand-in for a browser wallet extension: the page's window.ethereum (EIP-1193) and window.solana call back into
# the test, which signs with real keys (eth-account, PyNaCl) exactly as MetaMask or Phantom would.
FAKE_WALLETS = """
window.ethereum = {
  request: async ({ method, params }) => {
    if (method === "eth_requestAccounts") return [await window.walletAddress()];
    if (method === "eth_chainId") return "0x1";
    if (method === "personal_sign") return await window.walletSignEthereum(params[0]);
    throw new Error("unsupported " + method);
  },
};
window.solana = {
  publicKey: null,
  connect: async () => {
    const key = await window.walletSolanaKey();
    window.solana.publicKey = { toString: () => key };
    return { publicKey: window.solana.publicKey };
  },
  signMessage: async (bytes) => ({ signature: new Uint8Array(await window.walletSignSolana(Array.from(bytes))) }),
};
"""


async def test_wallet_sign_in_and_linking_with_a_wallet_in_the_browser(browser: Any, site: str,
                                                                       runtime: Runtime) -> None:
    from eth_account import Account
    from eth_account.messages import encode_defunct
    from nacl.signing import SigningKey
    from playwright.async_api import expect

    host = site.removeprefix("http://")
    runtime.settings.siwe_domain, runtime.settings.siwe_uri = host, site  # the address users reach
    eth, sol = Account.create(), SigningKey.generate()
    signed: list[str] = []

    def sign_ethereum(message: str) -> str:
        signed.append(message)
        return "0x" + bytes(eth.sign_message(encode_defunct(text=message)).signature).hex()

    context = await browser.new_context()
    await context.expose_function("walletAddress", lambda: eth.address.lower())  # wallets answer lower case
    await context.expose_function("walletSignEthereum", sign_ethereum)
    await context.expose_function("walletSolanaKey", lambda: base58.b58encode(bytes(sol.verify_key)).decode())
    await context.expose_function("walletSignSolana", lambda data: list(sol.sign(bytes(data)).signature))
    await context.add_init_script(FAKE_WALLETS)
    errors: list[str] = []
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    await page.goto(site + "/signin?next=/settings")
    await page.click("#signin-ethereum")
    await expect(page).to_have_url(site + "/settings")
    assert signed[0].startswith(f"{host} wants you to sign in with your Ethereum account:\n")
    await expect(page.locator("#profile-wallets")).to_contain_text(f"ethereum: {eth.address}")
    await expect(page.locator("#profile-email")).to_contain_text("wallet account")

    await page.click("#link-solana")  # signed in: the second wallet joins this account
    await expect(page.locator("#profile-msg")).to_have_text("Wallet linked.")
    await expect(page.locator("#profile-wallets")).to_contain_text("solana: ")
    first = await (await page.request.get(site + "/api/v1/auth/me")).json()
    assert sorted(w["chain"] for w in first["wallets"]) == ["ethereum", "solana"]

    await page.click("#site-nav [data-nav=signout]")
    await expect(page).to_have_url(site + "/signin")
    await page.click("#signin-solana")  # the linked wallet signs in to the same account
    await expect(page).to_have_url(site + "/")
    again = await (await page.request.get(site + "/api/v1/auth/me")).json()
    assert again["id"] == first["id"]
    assert errors == []
    await context.close()


@pytest.fixture
async def demo_site(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[str]:
    """The app as `pulse demo` runs it: PULSE_ENV=dev, no SMTP server configured, so mail goes to /dev/mail."""
    from marketpulse.accounts.demo import start_demo_accounts

    db = tmp_path / "demo.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", env="dev",
                        ingest_api_key=API_KEY, data_dir=tmp_path, jwt_secret_key="demo-jwt-secret-of-32-bytes-or-more")
    rt = Runtime.open(settings, clock=FakeClock(T0), bus=MemoryBus())
    try:
        async with serving(create_app(rt)) as url:
            host, port = url.removeprefix("http://").split(":")
            await start_demo_accounts(rt.services.accounts, host, int(port))
            yield url
    finally:
        await rt.close()


async def test_in_the_demo_a_new_user_verifies_through_the_demo_mailbox(browser: Any, demo_site: str) -> None:
    from playwright.async_api import expect

    errors: list[str] = []
    page = await new_page(browser, errors)
    await page.goto(demo_site + "/signup")
    await page.fill("#signup-form [name=email]", "demo-user@example.com")
    await page.fill("#signup-form [name=password]", STRONG)
    await page.click("#signup-form button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/verify\?email="))
    await page.click("main a:has-text('demo mailbox')")
    await expect(page).to_have_url(demo_site + "/dev/mail")
    mail = page.locator(".mail[data-to='demo-user@example.com']")
    await expect(mail).to_have_count(1)
    await mail.locator("a[href*='/verify-email?token=']").click()
    await page.click("button:has-text('Confirm my address')")
    await expect(page.locator("main")).to_contain_text("demo-user@example.com is confirmed")
    await page.click("main a:has-text('Sign in')")
    await page.fill("#signin-form [name=email]", "demo-user@example.com")
    await page.fill("#signin-form [name=password]", STRONG)
    await page.click("#signin-form button[type=submit]")
    await expect(page).to_have_url(demo_site + "/onboarding")
    assert errors == []


VIRTUAL_AUTHENTICATOR = {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                         "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True}


async def test_a_passkey_registered_in_settings_signs_in_without_a_password(browser: Any, site: str,
                                                                            runtime: Runtime) -> None:
    from playwright.async_api import expect

    # WebAuthn needs a domain for the relying party (an IP address can't be one): the site as http://localhost.
    local = site.replace("127.0.0.1", "localhost")
    runtime.settings.public_url = local
    await runtime.services.accounts.create_user("keyholder@example.com", STRONG, verified=True)
    context = await browser.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    cdp = await context.new_cdp_session(page)  # Chromium's virtual authenticator stands in for a security key
    await cdp.send("WebAuthn.enable")
    authenticator = await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": VIRTUAL_AUTHENTICATOR})

    await sign_in(page, local, "keyholder@example.com", STRONG, "/settings")
    await expect(page).to_have_url(local + "/settings")
    await expect(page.locator("#passkey-state")).to_have_text("No passkeys registered.")
    await page.fill("#passkey-name", "laptop")
    await page.click("#passkey-register")
    await expect(page.locator("#passkey-msg")).to_have_text("Passkey added.")
    await expect(page.locator("#passkey-list tbody tr")).to_have_count(1)
    await expect(page.locator("#passkey-list tbody tr")).to_contain_text("laptop")
    await expect(page.locator("#passkey-state")).to_have_text("1 passkey registered.")
    stored = (await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator["authenticatorId"]}))
    assert len(stored["credentials"]) == 1

    await page.click("#site-nav [data-nav=signout]")
    await expect(page).to_have_url(local + "/signin")
    await page.click("#signin-passkey")  # no address, no password: the authenticator's discoverable passkey
    await expect(page).to_have_url(local + "/")
    await expect(page.locator("#site-nav .who")).to_have_text("keyholder@example.com")

    # With two-factor on, a password sign-in's second step can be the passkey instead of a code.
    accounts, clock = runtime.services.accounts, runtime.clock
    user = await accounts.find_user("keyholder@example.com")
    assert user is not None
    secret, _ = await accounts.totp.enrol(user)
    await accounts.totp.confirm(user.id, pyotp.TOTP(secret).at(clock.now_ms() // 1000))
    await page.click("#site-nav [data-nav=signout]")
    await expect(page).to_have_url(local + "/signin")
    await sign_in(page, local, "keyholder@example.com", STRONG)
    await expect(page.locator("#second-factor-step")).to_be_visible()
    await page.click("#second-factor-passkey")
    await expect(page).to_have_url(local + "/")
    await expect(page.locator("#site-nav .who")).to_have_text("keyholder@example.com")

    await page.goto(local + "/settings")
    await page.locator("#passkey-list tbody tr button:has-text('Delete')").click()
    await expect(page.locator("#passkey-list tbody tr")).to_have_count(0)
    await expect(page.locator("#passkey-state")).to_have_text("No passkeys registered.")
    assert await accounts.passkeys.of_user(user.id) == []
    assert errors == []
    await context.close()


async def test_an_in_app_notification_rings_the_bell_live_and_marking_read_clears_it(browser: Any, site: str,
                                                                                     runtime: Runtime) -> None:
    from playwright.async_api import expect

    from delivery.helpers import add_destination, dispatcher, notify

    user = await runtime.services.accounts.create_user("bell@example.com", STRONG, verified=True)
    await add_destination(runtime, "app-bell", user.id, channel="in_app", address=user.id)
    await notify(runtime, user.id, ["app-bell"], "earlier")
    deliver = dispatcher(runtime)
    await deliver.run_once()  # one delivered before the page opens: the count comes from the history
    errors: list[str] = []
    page = await new_page(browser, errors)
    await sign_in(page, site, "bell@example.com", STRONG, "/pricing")
    await expect(page).to_have_url(site + "/pricing")
    await expect(page.locator("#nav-bell-count")).to_have_text("1")
    await expect(page.locator("#nav-bell")).to_have_attribute("data-live", "connected")

    await notify(runtime, user.id, ["app-bell"], "live", text="BTCUSDT crossed 100k")
    await deliver.run_once()  # published on the bus → the bridge → the user's room: no reload
    await deliver.close()
    await expect(page.locator("#nav-bell-count")).to_have_text("2")
    await page.click("#nav-bell-button")
    items = page.locator("#nav-bell-menu li[data-notification-id]")
    await expect(items).to_have_count(2)
    await expect(items.first).to_contain_text("alert live")
    await expect(items.first).to_contain_text("BTCUSDT crossed 100k")

    await items.last.click()  # one read: the count drops by one
    await expect(page.locator("#nav-bell-count")).to_have_text("1")
    await page.click("#nav-bell-read-all")
    await expect(page.locator("#nav-bell-count")).to_have_attribute("data-count", "0")
    await expect(page.locator("#nav-bell-count")).to_have_text("")
    rows, _ = await runtime.services.delivery.history(user.id, None, limit=10, offset=0, channel="in_app")
    assert [r.read_at_ms is not None for r in rows] == [True, True]
    await page.reload()  # and it stays read
    await expect(page.locator("#nav-bell-count")).to_have_attribute("data-count", "0")
    assert errors == []
