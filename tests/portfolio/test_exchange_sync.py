"""An exchange account through real ccxt against the fake Binance: the key checked read-only, sealed and never
returned; history read page by page into the tax transactions (so tax reports use it), resumed from its cursor after
a failure, never twice; the portfolio valued at stored market prices with P&L against the FIFO basis. SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from fakes.ccxt_exchange import Account, FakeCcxtExchange, deposit, funding_income, my_trade, withdrawal
from marketpulse.api.app import create_app
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.library import CandleLibrary
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.store import save_candles
from marketpulse.portfolio.core import Vault
from marketpulse.portfolio.tables import PortfolioAccountRow
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from marketpulse.tax.tables import TaxTransactionRow
from support.accounts import sign_in_user

T0 = 1_760_126_400_000  # the conftest clock's start
H = 3_600_000
KEY, SECRET = "readonlykey0000000000001", "s3cret-s3cret-s3cret-s3cret"
ACCOUNTS = "/api/v1/portfolio/accounts"


@pytest.fixture
def exchange() -> Iterator[FakeCcxtExchange]:
    fake = FakeCcxtExchange(private_limit=2)  # two records a page: every stream pages
    fake.add_market("BTC", "USDT")
    fake.add_market("ETH", "BTC")
    fake.add_account(Account(
        KEY, SECRET, balances={"BTC": "0.4", "ETH": "2", "USDT": "1000"},
        trades={"BTCUSDT": [my_trade(i, "BTCUSDT", T0 - 50 * H + i * H, "50000", "0.1", buyer=True,
                                     commission="0.05", commission_asset="USDT") for i in range(5)],
                "ETHBTC": [my_trade(9, "ETHBTC", T0 - 40 * H, "0.05", "2", buyer=True, commission="0.001",
                                    commission_asset="ETH")]},
        deposits=[deposit("d1", "USDT", "5000", T0 - 60 * H, "0xdep1")],
        withdrawals=[withdrawal("w1", "BTC", "0.05", "0.0005", T0 - 30 * H, "0xwd1")],
        incomes=[funding_income(1, "BTCUSDT", "1.5", T0 - 20 * H), funding_income(2, "BTCUSDT", "-0.5", T0 - 19 * H)]))
    fake.add_account(Account("tradingkey00000000000001", SECRET, can_trade=True))
    with fake.running():
        yield fake


@pytest.fixture
def settings(db_url: str, tmp_path: Path, exchange: FakeCcxtExchange, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("PULSE_PORTFOLIO_EXCHANGE_URLS", json.dumps({"binance": exchange.url}))
    monkeypatch.setenv("PULSE_PORTFOLIO_SECRET_KEY", "portfolio-test-secret-portfolio-test-secret")
    return Settings(database_url=db_url, bus_url="memory://", data_dir=tmp_path / "var", ingest_api_key="test-key")


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)),
                                 base_url="http://localhost") as c:
        yield c


async def prices(runtime: Runtime) -> None:
    """BTC at 50,000 through the history and 60,000 now; ETH/USDT at 2,500 (candles, as the recorder stores them)."""
    await save_candles(runtime.sessions, "binance", [
        Candle("BTCUSDT", "1h", T0 - 70 * H, 50000, 50000, 50000, 50000, 1, 1),
        Candle("BTCUSDT", "1h", T0 - H, 60000, 60000, 60000, 60000, 1, 1),
        Candle("ETHUSDT", "1h", T0 - H, 2500, 2500, 2500, 2500, 1, 1),
    ])


async def connect(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post(ACCOUNTS, json={"kind": "exchange", "exchange": "binance", "name": "my binance",
                                             "api_key": KEY, "secret": SECRET} | body, headers=headers)


async def test_connect_sync_and_value_an_exchange_account(client: httpx.AsyncClient, runtime: Runtime,
                                                          exchange: FakeCcxtExchange) -> None:
    await prices(runtime)
    who = await sign_in_user(runtime)
    made = await connect(client, who.headers)
    assert made.status_code == 201, made.text
    assert KEY not in made.text and SECRET not in made.text and made.json()["api_key"] == "read…0001"
    await runtime.services.portfolio.wait()
    listed = (await client.get(ACCOUNTS, headers=who.headers)).json()
    [account] = listed["data"]
    assert listed["next"] is None and account["status"] == "ok", account
    assert account["last_sync_ms"] == T0 and KEY not in json.dumps(listed)
    async with runtime.sessions() as s:  # sealed at rest
        row = (await s.execute(select(PortfolioAccountRow))).scalar_one()
        assert KEY not in (row.api_key_sealed or "") and SECRET not in (row.secret_sealed or "")
        # sealed with PULSE_PORTFOLIO_SECRET_KEY's key (not the JWT secret's)
        assert Vault("portfolio-test-secret-portfolio-test-secret").open(row.api_key_sealed or "") == KEY
        txs = (await s.execute(select(TaxTransactionRow).where(TaxTransactionRow.owner_id == who.user_id)
                               .order_by(TaxTransactionRow.timestamp_ms))).scalars().all()
    kinds = [(t.type, t.asset, t.amount) for t in txs]
    assert kinds[0] == ("transfer_in", "USDT", "5000")
    assert kinds.count(("buy", "BTC", "0.1")) == 5  # every page read, none twice
    assert ("buy", "ETH", "2") in kinds and ("sell", "BTC", "0.1") in kinds and ("fee", "ETH", "0.001") in kinds
    assert ("transfer_out", "BTC", "0.05") in kinds and ("fee", "BTC", "0.0005") in kinds
    assert ("income", "USDT", "1.5") in kinds and ("fee", "USDT", "0.5") in kinds
    assert {t.account for t in txs} == {"my binance"} and account["transactions"] == len(txs)
    buy = next(t for t in txs if t.type == "buy" and t.asset == "BTC")
    assert (buy.price_usd, buy.fee_usd) == ("50000", "0.05")
    # syncing again reads nothing new and stores nothing twice
    assert (await client.post(f"{ACCOUNTS}/{account['id']}/sync", headers=who.headers)).status_code == 202
    await runtime.services.portfolio.wait()
    again = (await client.get(f"{ACCOUNTS}/{account['id']}", headers=who.headers)).json()
    assert again["transactions"] == len(txs) and again["status"] == "ok"
    # the portfolio: balances at market prices, P&L against the FIFO basis of the synced history
    view = (await client.get("/api/v1/portfolio", headers=who.headers)).json()
    assert view["total_usd"] == pytest.approx(0.4 * 60000 + 2 * 2500 + 1000)
    btc = next(a for a in view["by_asset"] if a["asset"] == "BTC")
    # lots: 5 × 0.1 bought at 50,000 (+0.05 fee each) − 0.1 sold for ETH − 0.05 − 0.0005 withdrawn = 0.3495 BTC
    assert btc["cost_basis_usd"] == pytest.approx(0.3495 * 50000.5, abs=0.01)
    assert btc["unrealized_pnl_usd"] == pytest.approx(0.3495 * 60000 - 0.3495 * 50000.5, abs=0.01)
    assert {c["key"] for c in view["by_category"]} == {"bitcoin", "ether", "stablecoin"}
    assert view["by_account"][0]["label"] == "my binance" and view["by_chain"][0]["key"] == "binance"
    # and a tax report over it sees the synced disposals
    report = await client.post("/api/v1/tax/reports", json={"year": 2025}, headers=who.headers)
    await runtime.services.tax.wait()
    summary = (await client.get(f"/api/v1/tax/reports/{report.json()['id']}", headers=who.headers)).json()["summary"]
    assert summary["disposals"] >= 1 and summary["income_events"] == 1


async def count(runtime: Runtime, owner: str) -> int:
    async with runtime.sessions() as s:
        return len((await s.execute(select(TaxTransactionRow.id).where(TaxTransactionRow.owner_id == owner))).all())


async def test_a_sync_that_fails_resumes_from_its_cursor(client: httpx.AsyncClient, runtime: Runtime,
                                                         exchange: FakeCcxtExchange) -> None:
    await prices(runtime)
    clean = await sign_in_user(runtime)
    assert (await connect(client, clean.headers)).status_code == 201
    await runtime.services.portfolio.wait()
    expected = await count(runtime, clean.user_id)
    who = await sign_in_user(runtime)
    # the key's check, the balances and two pages of trades pass; then the exchange rate-limits us
    exchange.fail_private_next(1, 429, after=4)
    made = await connect(client, who.headers)
    await runtime.services.portfolio.wait()
    failed = (await client.get(f"{ACCOUNTS}/{made.json()['id']}", headers=who.headers)).json()
    assert failed["status"] == "error" and "429" in failed["last_error"], failed
    assert failed["last_sync_ms"] is None
    stored = await count(runtime, who.user_id)
    assert 0 < stored < expected  # the pages read before the failure are kept
    before = len(exchange.private_requests)
    await client.post(f"{ACCOUNTS}/{made.json()['id']}/sync", headers=who.headers)
    await runtime.services.portfolio.wait()
    done = (await client.get(f"{ACCOUNTS}/{made.json()['id']}", headers=who.headers)).json()
    assert done["status"] == "ok" and done["last_error"] is None
    assert await count(runtime, who.user_id) == expected  # the rest, and nothing twice
    first_trades = [q for p, q in exchange.private_requests[before:] if p == "/api/v3/myTrades"
                    and q["symbol"] == "BTCUSDT"][0]
    assert int(first_trades["startTime"]) > T0 - 50 * H  # resumed from the cursor, not from the start


async def test_keys_that_can_trade_or_are_wrong_are_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    who = await sign_in_user(runtime)
    trading = await connect(client, who.headers, api_key="tradingkey00000000000001")
    assert trading.status_code == 422 and trading.json()["detail"][0]["loc"] == ["body", "api_key"]
    assert "read-only" in trading.text
    wrong = await connect(client, who.headers, secret="not-the-secret-at-all")
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "api_key"]
    unknown = await connect(client, who.headers, exchange="nope-exchange")
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "exchange"]
    assert (await client.get(ACCOUNTS, headers=who.headers)).json()["data"] == []
    assert (await connect(client, who.headers)).status_code == 201
    dup = await connect(client, who.headers)
    assert dup.status_code == 422 and dup.json()["detail"][0]["loc"] == ["body", "name"]
    await runtime.services.portfolio.wait()


async def test_another_users_account_is_not_found(client: httpx.AsyncClient, runtime: Runtime) -> None:
    alice, bob = await sign_in_user(runtime), await sign_in_user(runtime)
    made = await connect(client, bob.headers)
    await runtime.services.portfolio.wait()
    theirs = made.json()["id"]
    for method, path in (("GET", f"{ACCOUNTS}/{theirs}"), ("POST", f"{ACCOUNTS}/{theirs}/sync"),
                         ("DELETE", f"{ACCOUNTS}/{theirs}")):
        assert (await client.request(method, path, headers=alice.headers)).status_code == 404
    assert (await client.get("/api/v1/portfolio", headers=alice.headers)).json()["total_usd"] == 0
    assert (await client.delete(f"{ACCOUNTS}/{theirs}", headers=bob.headers)).status_code == 204
    assert (await client.get(ACCOUNTS, headers=bob.headers)).json()["data"] == []


async def test_history_older_than_the_store_is_priced_from_the_candle_library(
        client: httpx.AsyncClient, runtime: Runtime, settings: Settings) -> None:
    minute = T0 - 40 * H  # the ETH/BTC trade's minute: no stored candle within a day of it
    frame = CandleFrame(np.array([minute], dtype=np.int64), *(np.array([48000.0]) for _ in range(4)),
                        np.array([1.0]), "BTCUSDT", "1m")
    CandleLibrary(settings.data_dir / "library").append("binance", "BTCUSDT", "1m", frame)
    who = await sign_in_user(runtime)
    assert (await connect(client, who.headers)).status_code == 201
    await runtime.services.portfolio.wait()
    async with runtime.sessions() as s:
        rows = (await s.execute(select(TaxTransactionRow).where(TaxTransactionRow.owner_id == who.user_id,
                                                                TaxTransactionRow.timestamp_ms == minute))
                ).scalars().all()
    priced = {(r.type, r.asset): Decimal(r.price_usd or "NaN") for r in rows}
    assert priced[("buy", "ETH")] == 2400 and priced[("sell", "BTC")] == 48000  # 0.05 BTC × 48,000
