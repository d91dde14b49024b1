"""`pulse demo`'s portfolio: the fake Binance runs as the demo exchange with a trader's history, and the demo
chain's wallet is followable; the /portfolio page shows what to connect with, and a user who does sees both synced
(the Done-when's first steps). SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from marketpulse.api.app import create_app
from marketpulse.clock import FakeClock
from marketpulse.onchain.demo import FAUCET_UNITS, start_demo_chain
from marketpulse.onchain.devchain import Missing, anvil_binary, token_bytecode
from marketpulse.portfolio.demo import DEMO_KEY, DEMO_SECRET, start_demo_portfolio
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.accounts import sign_in_user
from support.chain import NODE_MODULES

CASCADE_MS = 1_760_127_600_000
ACCOUNTS = "/api/v1/portfolio/accounts"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start_ms=int(time.time() * 1000))  # the chain's blocks carry wall-clock times


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, bus_url="memory://", data_dir=tmp_path / "var", ingest_api_key="test-key",
                    jwt_secret_key="test-jwt-secret-of-at-least-32-bytes!", node_modules_dir=NODE_MODULES, env="dev")


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)),
                                 base_url="http://localhost") as c:
        yield c


async def test_the_demo_exchange_and_wallet_can_be_connected(client: httpx.AsyncClient, runtime: Runtime) -> None:
    try:
        anvil_binary(NODE_MODULES)
        token_bytecode(NODE_MODULES)
        chain = await start_demo_chain(runtime)
    except Missing as exc:
        pytest.skip(str(exc))
    assert chain is not None
    hint = start_demo_portfolio(runtime, chain, CASCADE_MS)
    assert hint is not None and hint.wallet == chain.wallet and hint.chain == "local"
    page = await client.get("/portfolio")
    assert DEMO_KEY in page.text and chain.wallet in page.text
    who = await sign_in_user(runtime)
    exchange = await client.post(ACCOUNTS, json={"kind": "exchange", "exchange": "binance", "name": "demo binance",
                                                 "api_key": DEMO_KEY, "secret": DEMO_SECRET}, headers=who.headers)
    wallet = await client.post(ACCOUNTS, json={"kind": "evm", "name": "demo wallet", "chain": "local",
                                               "address": chain.wallet}, headers=who.headers)
    assert (exchange.status_code, wallet.status_code) == (201, 201), (exchange.text, wallet.text)
    await runtime.services.portfolio.wait()
    listed = sorted((await client.get(ACCOUNTS, headers=who.headers)).json()["data"], key=lambda a: a["name"])
    assert [(a["name"], a["status"]) for a in listed] == [("demo binance", "ok"), ("demo wallet", "ok")], listed
    assert listed[0]["transactions"] > 40 and listed[1]["transactions"] >= 1  # the faucet's transfer in
    view = (await client.get("/api/v1/portfolio", headers=who.headers)).json()
    held = {a["asset"]: Decimal(a["amount"]) for a in view["by_asset"]}
    assert held["BTC"] == Decimal("0.2") and held["ETH"] > 2  # exchange ETH + the wallet's gas coin
    assert held["USDT"] == Decimal("28316.33") + Decimal(FAUCET_UNITS).scaleb(-6)
    # the history the demo exchange carries ends before the replay's market time
    await runtime.services.tax.wait()
