"""Wallets by address: an EVM wallet on a real local chain (anvil) with a mock ERC-20 compiled at test time — native
and token balances, transfers in and out (token logs and native transactions) into the tax history, a few blocks a
page; and a Solana wallet against a fake node speaking Solana's JSON-RPC. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from fakes.solana_rpc import FakeSolana, Wallet
from marketpulse.api.app import create_app
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.store import save_candles
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from marketpulse.tax.tables import TaxTransactionRow
from support.accounts import sign_in_user
from support.chain import CHAIN_ID, Anvil

T0 = 1_760_126_400_000
ACCOUNTS = "/api/v1/portfolio/accounts"
SOL_WALLET = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"
USDC_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    chain = Anvil.start()
    yield chain
    chain.stop()


@pytest.fixture(scope="module")
def solana() -> Iterator[FakeSolana]:
    node = FakeSolana(max_limit=2)  # two signatures a page: the wallet's activity pages
    with node.running():
        yield node


@pytest.fixture
def token(anvil: Anvil) -> str:
    return anvil.deploy_token(6)


@pytest.fixture
def settings(db_url: str, tmp_path: Path, anvil: Anvil, token: str, solana: FakeSolana,
             monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("PULSE_PORTFOLIO_EVM_CHAINS", json.dumps({"local": {
        "chain_id": CHAIN_ID, "rpc_url": anvil.url, "native": "ETH", "tokens": {"USDT": token},
        "start_block": anvil.block_number() + 1, "blocks_per_sync": 2}}))
    monkeypatch.setenv("PULSE_PORTFOLIO_SOLANA_RPC_URL", solana.url)
    monkeypatch.setenv("PULSE_PORTFOLIO_SOLANA_TOKENS", json.dumps({USDC_MINT: "USDC"}))
    return Settings(database_url=db_url, bus_url="memory://", data_dir=tmp_path / "var", ingest_api_key="test-key")


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)),
                                 base_url="http://localhost") as c:
        yield c


async def transactions(runtime: Runtime, owner: str) -> list[TaxTransactionRow]:
    async with runtime.sessions() as s:
        return list((await s.execute(select(TaxTransactionRow).where(TaxTransactionRow.owner_id == owner)
                                     .order_by(TaxTransactionRow.timestamp_ms, TaxTransactionRow.line))).scalars())


async def test_an_evm_wallet_balances_and_transfers(client: httpx.AsyncClient, runtime: Runtime, anvil: Anvil,
                                                    token: str) -> None:
    await save_candles(runtime.sessions, "binance", [Candle("ETHUSDT", "1h", T0 - 3_600_000, 2500, 2500, 2500, 2500,
                                                            1, 1)])
    wallet = anvil.accounts[3]
    exchange_deposit = "0x" + "ee" * 20
    paid_in = anvil.transfer(token, wallet, 250_000_000)  # 250 USDT in
    paid_out = anvil.transfer(token, exchange_deposit, 40_500_000, sender=wallet)  # 40.5 USDT out
    eth_in = anvil.rpc("eth_sendTransaction", {"from": anvil.accounts[0], "to": wallet, "value": hex(3 * 10**18)})
    who = await sign_in_user(runtime)
    made = await client.post(ACCOUNTS, json={"kind": "evm", "name": "cold wallet", "chain": "local",
                                             "address": wallet.upper().replace("0X", "0x")}, headers=who.headers)
    assert made.status_code == 201, made.text
    assert made.json()["address"] == wallet.lower()
    await runtime.services.portfolio.wait()
    account = (await client.get(f"{ACCOUNTS}/{made.json()['id']}", headers=who.headers)).json()
    assert account["status"] == "ok", account
    rows = await transactions(runtime, who.user_id)
    moves = [(r.type, r.asset, Decimal(r.amount), r.tx_id) for r in rows]
    assert ("transfer_in", "USDT", Decimal("250"), paid_in) in moves
    assert ("transfer_out", "USDT", Decimal("40.5"), paid_out) in moves
    assert ("transfer_in", "ETH", Decimal("3"), eth_in) in moves
    gas = anvil.receipt(paid_out)
    paid_gas = Decimal(int(gas["gasUsed"], 16) * int(gas["effectiveGasPrice"], 16)).scaleb(-18)
    assert ("fee", "ETH", paid_gas, f"{paid_out}:gas") in moves  # the gas of the transfer it sent, nothing else
    assert len(moves) == 4 and {r.account for r in rows} == {"cold wallet"}
    view = (await client.get("/api/v1/portfolio", headers=who.headers)).json()
    held = {a["asset"]: a for a in view["by_asset"]}
    assert Decimal(held["USDT"]["amount"]) == Decimal("209.5")
    assert held["ETH"]["price_usd"] == 2500 and Decimal(held["ETH"]["amount"]) > 10_000  # anvil's funding + 3
    assert view["by_chain"][0]["key"] == "local"
    # new blocks: the next sync reads only them
    anvil.transfer(token, wallet, 1_000_000)
    await client.post(f"{ACCOUNTS}/{made.json()['id']}/sync", headers=who.headers)
    await runtime.services.portfolio.wait()
    assert len(await transactions(runtime, who.user_id)) == 5


async def test_bad_wallets_are_refused_naming_the_field(client: httpx.AsyncClient, runtime: Runtime) -> None:
    who = await sign_in_user(runtime)
    for body, field in (({"kind": "evm", "name": "x", "chain": "mars", "address": "0x" + "11" * 20}, "chain"),
                        ({"kind": "evm", "name": "x", "chain": "local", "address": "0x12"}, "address"),
                        ({"kind": "solana", "name": "x", "address": "0OIl" * 10}, "address")):
        resp = await client.post(ACCOUNTS, json=body, headers=who.headers)
        assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", field], resp.text


async def test_a_solana_wallet_balances_and_activity(client: httpx.AsyncClient, runtime: Runtime,
                                                     solana: FakeSolana) -> None:
    other_mint = "Mint111111111111111111111111111111111111"
    solana.calls.clear()  # the node serves the module's tests (both databases)
    solana.wallets[SOL_WALLET] = Wallet(lamports=2_500_000_000, tokens={USDC_MINT: (12_340_000, 6), other_mint: (5, 0)})
    for i in range(5):
        solana.add_signature(SOL_WALLET, f"sig{i}", 1000 + i, T0 // 1000 - 100 + i)
    who = await sign_in_user(runtime)
    made = await client.post(ACCOUNTS, json={"kind": "solana", "name": "phantom", "address": SOL_WALLET},
                             headers=who.headers)
    assert made.status_code == 201, made.text
    await runtime.services.portfolio.wait()
    account = (await client.get(f"{ACCOUNTS}/{made.json()['id']}", headers=who.headers)).json()
    assert account["status"] == "ok", account
    view = (await client.get("/api/v1/portfolio", headers=who.headers)).json()
    held = {a["asset"]: Decimal(a["amount"]) for a in view["by_asset"]}
    assert held == {"SOL": Decimal("2.5"), "USDC": Decimal("12.34"), "Mint1111": Decimal("5")}
    assert view["by_chain"][0]["key"] == "solana" and "SOL" in view["unpriced"]
    pages = [p for m, p in solana.calls if m == "getSignaturesForAddress" and p[0] == SOL_WALLET]
    assert len(pages) == 4  # 5 signatures, two a page, then an empty page
    solana.add_signature(SOL_WALLET, "sig5", 1005, T0 // 1000)
    await client.post(f"{ACCOUNTS}/{made.json()['id']}/sync", headers=who.headers)
    await runtime.services.portfolio.wait()
    latest = [p for m, p in solana.calls if m == "getSignaturesForAddress" and p[0] == SOL_WALLET][-1]
    assert latest[1]["until"] == "sig4"  # resumed after the newest already seen
