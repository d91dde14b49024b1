"""Who may call what, proven over the whole OpenAPI document rather than route by route, so a route added later
without an owner check fails here:

- every state-changing route answers 401 to a caller with no credentials, but the deliberate exceptions listed
  below (the sign-in flows themselves, and ingest guarded by X-API-Key); the per-user reads do too;
- with two signed-in users each owning one of everything, every route with a path parameter answers user A 404
  for user B's object (not 403, not the data) and leaves it as it was; admin routes answer a non-admin 403.
  A path parameter the walk does not know how to fill fails the walk: teach it below.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from marketpulse.accounts.tables import ApiKeyRow, AuthSessionRow, PasskeyRow, WalletRow
from marketpulse.backtest.tables import BacktestJobRow
from marketpulse.delivery.tables import DestinationRow
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.store import save_candles
from marketpulse.onchain.tables import UsdtInvoiceRow
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from marketpulse.signals.core import config_params
from marketpulse.trading.paper.tables import PaperDeploymentRow, PaperOrderRow, PaperPositionRow
from support.accounts import SignedIn, sign_in_user

from .serving import API_KEY

MUTATING = {"post", "put", "patch", "delete"}
T0 = 1_760_126_400_000  # the conftest clock's start
MINUTE = 60_000

# Mutating routes open to a caller without a session, on purpose.
NO_SESSION_NEEDED = {
    # the sign-in flows: they are how a caller gets credentials
    ("post", "/api/v1/auth/signup"), ("post", "/api/v1/auth/signin"), ("post", "/api/v1/auth/signin/second-factor"),
    ("post", "/api/v1/auth/refresh"), ("post", "/api/v1/auth/verify-email"),
    ("post", "/api/v1/auth/resend-verification"), ("post", "/api/v1/auth/request-password-reset"),
    ("post", "/api/v1/auth/reset-password"), ("post", "/api/v1/auth/siwe/nonce"), ("post", "/api/v1/auth/siwe/verify"),
    ("post", "/api/v1/auth/solana/nonce"), ("post", "/api/v1/auth/solana/verify"),
    ("post", "/api/v1/auth/passkeys/signin/options"), ("post", "/api/v1/auth/passkeys/signin/verify"),
    ("post", "/api/v1/auth/unlock"),  # the mailed link that lifts a brute-force lock: its token is the proof
}
# Machine-to-machine ingest: no user, but the X-API-Key shared secret (refused without it).
INGEST = {("post", "/api/v1/market/open-interest/ingest"), ("post", "/api/v1/volume-alerts/ingest")}
# Webhooks a third party calls: no user; TradingView's secret token in the URL, Stripe's signature header.
WEBHOOKS = {("post", "/webhook/tradingview/{token}"), ("post", "/api/v1/payments/webhook")}
# Reads that are a user's own: anonymous callers are refused too (market data, plans and alerts stay public).
PER_USER_READS = ("/api/v1/paper/", "/api/v1/backtests", "/api/v1/account", "/api/v1/auth/me", "/api/v1/admin/",
                  "/api/v1/payments/usdt/invoice", "/api/v1/portfolio")
# Routes with a path parameter that names public data, not anyone's object: they answer, but nothing of B's
# (a chart's fill markers are the caller's own).
PUBLIC_PATHS = {"/api/v1/market/symbol/{symbol}", "/api/v1/market/history/{symbol}", "/api/v1/charts/{symbol}",
                "/api/v1/market/open-interest/history/{symbol}",
                "/api/v1/signals/configs/{config_id}/backtest"}  # signal configs are the platform's, not a user's
ADMIN_PREFIX = "/api/v1/admin/"
RULE: dict[str, Any] = {"name": "above 100k", "symbols": ["BTCUSDT"], "frequency": "once_per_bar", "interval": "1m",
                        "conditions": {"all": [{"field": "price", "op": "crosses_above", "value": 100000}]},
                        "cooldown_s": 300}
# A valid body for the routes that need one, so the owner check is what answers (not the body's 422).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("patch", "/api/v1/watchlist/{list_id}"): {"name": "renamed"},
    ("post", "/api/v1/watchlist/{list_id}/items"): {"symbol": "SOLUSDT"},
    ("delete", "/api/v1/watchlist/{list_id}/items"): {"symbol": "BTCUSDT"},
    ("post", "/api/v1/account/destinations/{dest_id}/verify"): {"code": "123456"},
    ("post", "/api/v1/payments/usdt/invoice/{invoice_id}/tx"): {"tx_hash": "0x" + "ab" * 32},
    ("put", "/api/v1/alerts/rules/{rule_id}"): RULE,
    ("patch", "/api/v1/signals/subscriptions/{subscription_id}"): {"active": False},
}


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in doc["paths"].items() for method, op in ops.items()
            if method in MUTATING | {"get"}]


def placeholder_url(path: str) -> str:
    return path.replace("{", "").replace("}", "")  # /orders/{order_id} → /orders/order_id: some id



@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    # The walks send one anonymous request per route, more than an anonymous caller's minute allows: a 429 would
    # hide the 401 under test (rate limits are proven in tests/ratelimit).
    return Settings(database_url=db_url, bus_url="memory://", data_dir=tmp_path / "var", ingest_api_key=API_KEY,
                    max_body_bytes=4096, market_debounce_ms=0, rate_limits="off")

async def test_every_mutating_route_needs_credentials(app: Any, anonymous: httpx.AsyncClient) -> None:
    doc = (await anonymous.get("/openapi.json")).json()
    open_routes = []
    for method, path, _ in operations(doc):
        if method not in MUTATING and not path.startswith(PER_USER_READS):
            continue
        resp = await anonymous.request(method.upper(), placeholder_url(path), json={})
        if (method, path) in NO_SESSION_NEEDED | WEBHOOKS:
            continue
        if (method, path) in INGEST:
            assert resp.status_code == 401 and "X-API-Key" in resp.text, (method, path, resp.text)
            continue
        if resp.status_code != 401 or resp.headers.get("WWW-Authenticate") != "Bearer":
            open_routes.append(f"{method.upper()} {path} → {resp.status_code}")
    assert open_routes == [], "routes a caller without credentials reached (add an owner check, or list the " \
                              "route as a deliberate exception above)"
    listed = {(m, p) for m, p, _ in operations(doc)}
    assert listed >= NO_SESSION_NEEDED | INGEST, "an exception names a route that no longer exists"


@dataclass
class Owned:
    """One of every object a user owns, by the id its routes take."""

    who: SignedIn
    symbol: str  # the paper position's
    filled_order_id: str  # the order that opened it
    order_id: str
    deployment_id: str
    job_id: str
    key_id: str
    wallet_id: str
    passkey_id: str
    dest_id: str  # a notification destination
    rule_id: str  # an alert rule
    list_id: str  # a watchlist
    sub_id: str  # a volume-alert subscription
    config_id: str  # a signal config (the platform's) the user subscribes to
    signal_sub_id: str  # that signal subscription
    invoice_id: str  # a USDT invoice
    report_id: str  # a tax report
    account_id: str  # a portfolio connection (paper trading: no exchange or chain needed)


async def own_everything(client: httpx.AsyncClient, runtime: Runtime, who: SignedIn, symbol: str) -> Owned:
    as_them = {"headers": who.headers}
    bought = await client.post("/api/v1/paper/orders", json={"symbol": symbol, "side": "buy", "quantity": 0.01},
                               **as_them)
    assert bought.status_code == 201, bought.text
    await runtime.services.paper.on_candles([Candle(symbol, "1m", T0, 100.0, 100.0, 100.0, 100.0, 1.0, 100.0)])
    resting = await client.post("/api/v1/paper/orders", json={
        "symbol": symbol, "side": "buy", "type": "limit", "quantity": 0.01, "limit_price": 50.0}, **as_them)
    deployed = await client.post("/api/v1/paper/deployments", json={
        "strategy": "ema_cross", "symbol": symbol, "interval": "1m"}, **as_them)
    job = await client.post("/api/v1/backtests", json={"strategy": "ema_cross", "symbol": "NOPEUSDT"}, **as_them)
    key = await client.post("/api/v1/account/api-keys", json={"name": "bot", "scopes": ["read"]}, **as_them)
    watchlist = await client.post("/api/v1/watchlist", json={"name": "mine", "symbols": [symbol]}, **as_them)
    sub = await client.post("/api/v1/volume-alerts/subscriptions", json={"symbol": symbol}, **as_them)
    rule = await client.post("/api/v1/alerts/rules", json=RULE | {"symbols": [symbol]}, **as_them)
    report = await client.post("/api/v1/tax/reports", json={"year": 2024}, **as_them)
    connection = await client.post("/api/v1/portfolio/accounts", json={"kind": "paper", "name": "paper"}, **as_them)
    made = [resting, deployed, job, key, watchlist, sub, rule, report, connection]
    assert [r.status_code for r in made] == [201, 201, 202, 201, 201, 201, 201, 202, 201], [r.text for r in made]
    # A wallet and a passkey as their sign-ins store them (those flows are proven with real keys elsewhere).
    wallet = WalletRow(id=str(uuid.uuid4()), user_id=who.user_id, chain="solana",
                       address=uuid.uuid4().hex + uuid.uuid4().hex[:12], created_at_ms=T0, last_used_at_ms=T0)
    passkey = PasskeyRow(id=str(uuid.uuid4()), user_id=who.user_id, credential_id=uuid.uuid4().hex,
                         public_key=b"key", sign_count=0, name="laptop", transports=None, created_at_ms=T0)
    destination = DestinationRow(id=str(uuid.uuid4()), owner_id=who.user_id, channel="email",
                                 address=f"{who.user_id}@example.com", state="pending", code_attempts=0,
                                 created_at_ms=T0)
    # A USDT invoice as the invoice route stores it (made through the API against a real chain in tests/onchain).
    invoice = UsdtInvoiceRow(id=str(uuid.uuid4()), owner_id=who.user_id, chain="ethereum", chain_id=1, kind="credits",
                             product="credits_100", price_cents=1_000, pack_credits=100, token="0x" + "aa" * 20,
                             receiving_address="0x" + "bb" * 20, decimals=6,
                             amount=str(10_000_000 + int(uuid.uuid4().int % 9_999) + 1), status="pending",
                             credits_granted=0, note="", created_at_ms=T0, expires_at_ms=T0 + 3_600_000)
    async with runtime.sessions() as s:
        s.add_all([wallet, passkey, destination, invoice])
        await s.commit()
    signals = runtime.services.signals
    config = await signals.create_config(symbol=symbol, timeframe="1h", strategy="ut_bot", computed=False,
                                         params=config_params("ut_bot", {}))
    signal_sub = await signals.subscribe(who.user_id, "pro", config.id, [destination.id])
    await runtime.services.backtests.wait()
    await runtime.services.tax.wait()
    await runtime.services.portfolio.wait()
    return Owned(who, symbol, bought.json()["id"], resting.json()["id"], deployed.json()["id"], job.json()["id"],
                 key.json()["id"], wallet.id, passkey.id, destination.id, rule.json()["id"], watchlist.json()["id"],
                 sub.json()["id"], config.id, signal_sub.id, invoice.id, report.json()["id"],
                 connection.json()["id"])


def fill(path: str, theirs: Owned) -> str:
    """The path with user B's object in every parameter; an unknown parameter fails the walk."""
    ids = {"order_id": theirs.order_id, "deployment_id": theirs.deployment_id, "job_id": theirs.job_id,
           "key_id": theirs.key_id, "wallet_id": theirs.wallet_id, "session_id": theirs.who.session_id,
           "user_id": theirs.who.user_id, "symbol": theirs.symbol, "list_id": theirs.list_id,
           "sub_id": theirs.sub_id, "passkey_id": theirs.passkey_id, "dest_id": theirs.dest_id,
           "rule_id": theirs.rule_id, "config_id": theirs.config_id, "subscription_id": theirs.signal_sub_id,
           "invoice_id": theirs.invoice_id, "report_id": theirs.report_id,
           "account_id": theirs.account_id}
    out = path
    for name in [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]:
        if name not in ids and path.startswith(ADMIN_PREFIX):
            ids[name] = "any-id"  # a non-admin is refused before any id is looked at
        if name not in ids:
            pytest.fail(f"the isolation walk can't fill {{{name}}} in {path}: give user B such an object in "
                        f"own_everything and its id here")
        out = out.replace(f"{{{name}}}", ids[name])
    return out


async def snapshot(runtime: Runtime, owned: Owned, client: httpx.AsyncClient) -> dict[str, Any]:
    """What user B has, to compare before and after user A's walk."""
    who = owned.who.user_id
    async with runtime.sessions() as s:
        order = await s.get(PaperOrderRow, owned.order_id)
        deployment = await s.get(PaperDeploymentRow, owned.deployment_id)
        key = await s.get(ApiKeyRow, owned.key_id)
        session = await s.get(AuthSessionRow, owned.who.session_id)
        positions = (await s.execute(select(PaperPositionRow.symbol, PaperPositionRow.quantity)
                                     .where(PaperPositionRow.owner_id == who))).all()
        jobs = (await s.execute(select(BacktestJobRow.id).where(BacktestJobRow.owner_id == who))).scalars().all()
        wallet = await s.get(WalletRow, owned.wallet_id)
        passkey = await s.get(PasskeyRow, owned.passkey_id)
        destination = await s.get(DestinationRow, owned.dest_id)
        invoice = await s.get(UsdtInvoiceRow, owned.invoice_id)
    assert order and deployment and key and session and wallet and passkey and destination and invoice
    as_them = {"headers": owned.who.headers}
    return {"order": order.status, "deployment": deployment.status, "key": key.revoked_at_ms,
            "session": session.revoked_at_ms, "positions": sorted(positions), "jobs": list(jobs),
            "wallet": wallet.user_id, "passkey": passkey.user_id,
            "destination": (destination.state, destination.code_attempts),
            "invoice": (invoice.status, invoice.tx_hash),
            "watchlists": (await client.get("/api/v1/watchlist", **as_them)).json(),
            "subscriptions": (await client.get("/api/v1/volume-alerts/subscriptions", **as_them)).json(),
            "rules": (await client.get("/api/v1/alerts/rules", **as_them)).json(),
            "signal_subscriptions": (await client.get("/api/v1/signals/subscriptions", **as_them)).json(),
            "tax_reports": (await client.get("/api/v1/tax/reports", **as_them)).json(),
            "portfolio_accounts": (await client.get("/api/v1/portfolio/accounts", **as_them)).json()}


async def test_user_a_gets_404_for_every_object_of_user_b(app: Any, anonymous: httpx.AsyncClient,
                                                          runtime: Runtime) -> None:
    await save_candles(runtime.sessions, "test", [  # market data, so the symbols can be traded
        Candle(sym, "1m", T0 - MINUTE, 100.0, 100.0, 100.0, 100.0, 1.0, 100.0) for sym in ("BTCUSDT", "ETHUSDT")])
    alice, bob = await sign_in_user(runtime), await sign_in_user(runtime)
    mine = await own_everything(anonymous, runtime, alice, "ETHUSDT")
    theirs = await own_everything(anonymous, runtime, bob, "BTCUSDT")
    before = await snapshot(runtime, theirs, anonymous)
    doc = (await anonymous.get("/openapi.json")).json()
    walked, leaks = [], []
    for method, path, _ in operations(doc):
        if "{" not in path or (method, path) in WEBHOOKS:
            continue
        if path in PUBLIC_PATHS:
            public = await anonymous.get(fill(path, theirs), headers=alice.headers)
            if any(i in public.text for i in (theirs.filled_order_id, theirs.order_id, theirs.deployment_id)):
                leaks.append(f"GET {path} shows user B's trading")
            continue
        resp = await anonymous.request(method.upper(), fill(path, theirs), headers=alice.headers,
                                       json=BODIES.get((method, path), {}) if method in MUTATING else None)
        walked.append(f"{method.upper()} {path}")
        expected = 403 if path.startswith(ADMIN_PREFIX) else 404
        if resp.status_code != expected:
            leaks.append(f"{method.upper()} {path} → {resp.status_code} {resp.text[:120]}")
    assert leaks == [], "user A reached user B's objects"
    assert len(walked) >= 10, walked  # the walk really walked (paper, backtests, keys, admin)
    assert await snapshot(runtime, theirs, anonymous) == before  # and changed nothing of B's
    # The same routes do reach A's own objects (so the 404s above are about ownership, not broken routes).
    assert (await anonymous.get(f"/api/v1/paper/orders/{mine.order_id}", headers=alice.headers)).status_code == 200
    assert (await anonymous.get(f"/api/v1/backtests/{mine.job_id}", headers=alice.headers)).status_code == 200
