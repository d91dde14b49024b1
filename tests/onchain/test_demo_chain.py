"""`pulse demo`'s USDT: a local chain started from node_modules with the mock USDT deployed and accepted as `local`,
a funded demo wallet that pays an invoice's exact amount, and the plan or balance changing at once when the hash is
submitted (one confirmation); without anvil the demo says so and offers no USDT."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import structlog

from marketpulse.api.app import create_app
from marketpulse.clock import FakeClock
from marketpulse.onchain.demo import FAUCET_UNITS, start_demo_chain
from marketpulse.onchain.devchain import Missing, anvil_binary, token_bytecode
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.accounts import sign_in_user
from support.chain import NODE_MODULES

INVOICE = "/api/v1/payments/usdt/invoice"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start_ms=int(time.time() * 1000))  # the chain's blocks carry wall-clock times


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, bus_url="memory://", data_dir=tmp_path / "var", ingest_api_key="test-key",
                    jwt_secret_key="test-jwt-secret-of-at-least-32-bytes!", node_modules_dir=NODE_MODULES)


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)),
                                 base_url="http://localhost") as c:
        yield c


def needs_chain() -> None:
    try:
        anvil_binary(NODE_MODULES)
        token_bytecode(NODE_MODULES)
    except Missing as exc:
        pytest.skip(str(exc))


async def test_the_demo_chain_lets_a_user_buy_credits_and_a_plan_with_usdt_at_once(
        client: httpx.AsyncClient, runtime: Runtime) -> None:
    needs_chain()
    chain = await start_demo_chain(runtime)
    assert chain is not None
    assert list(runtime.settings.usdt_chains) == ["local"]
    who = await sign_in_user(runtime, plan="free")
    wallet = (await client.get("/dev/usdt/wallet", headers=who.headers)).json()
    assert wallet["address"] == chain.wallet and wallet["balance"] == f"{FAUCET_UNITS / 1e6:.6f}"

    inv = (await client.post(INVOICE, json={"chain": "local", "credit_pack": "credits_100"},
                             headers=who.headers)).json()
    paid = await client.post("/dev/usdt/pay", json={"invoice_id": inv["id"]}, headers=who.headers)
    assert paid.status_code == 200, paid.text
    r = await client.post(f"{INVOICE}/{inv['id']}/tx", json={"tx_hash": paid.json()["tx_hash"]}, headers=who.headers)
    assert (r.json()["status"], r.json()["credits_granted"]) == ("paid", 100), r.text  # one confirmation: at once
    credits = (await client.get("/api/v1/account/credits", headers=who.headers)).json()
    assert credits["data"][0]["kind"] == "purchase" and credits["data"][0]["amount"] == 100

    plan = (await client.post(INVOICE, json={"chain": "local", "plan": "pro"}, headers=who.headers)).json()
    tx = (await client.post("/dev/usdt/pay", json={"invoice_id": plan["id"]}, headers=who.headers)).json()["tx_hash"]
    assert (await client.post(f"{INVOICE}/{plan['id']}/tx", json={"tx_hash": tx},
                              headers=who.headers)).json()["status"] == "paid"
    assert (await client.get("/api/v1/auth/me", headers=who.headers)).json()["plan"] == "pro"
    left = (await client.get("/dev/usdt/wallet", headers=who.headers)).json()["balance"]
    assert float(left) == pytest.approx((FAUCET_UNITS - int(inv["amount_units"]) - int(plan["amount_units"])) / 1e6)

    other = await sign_in_user(runtime, plan="free")  # someone else's invoice is not the demo wallet's to pay
    assert (await client.post("/dev/usdt/pay", json={"invoice_id": plan["id"]},
                              headers=other.headers)).status_code == 404
    assert (await client.post("/dev/usdt/pay", json={"invoice_id": plan["id"]})).status_code == 401


async def test_without_anvil_the_demo_says_so_and_offers_no_usdt(
        client: httpx.AsyncClient, runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runtime.settings.node_modules_dir = tmp_path  # no npm packages here
    with structlog.testing.capture_logs() as logs:
        assert await start_demo_chain(runtime) is None
    assert "USDT payments are off in this demo: npm @foundry-rs/anvil is not installed" in capsys.readouterr().out
    assert [e["event"] for e in logs] == ["no local chain for USDT payments in the demo"]
    assert runtime.settings.usdt_chains == {}
    who = await sign_in_user(runtime)
    assert (await client.get("/dev/usdt/wallet", headers=who.headers)).status_code == 404
    assert (await client.get("/api/v1/payments/usdt/chains")).json()["data"] == []
