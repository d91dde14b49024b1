"""USDT paid on-chain, against a real local chain (anvil) with a mock USDT of 6 decimals compiled at test time: the
invoice API, verification of a submitted hash (a look-alike token, a failed transaction, a transfer to another
address, a replayed hash), confirmations and a reorganisation, under-, over- and late payments, and the watcher
finding a payment under its lease. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from marketpulse.accounts.tables import AuditRow
from marketpulse.api.app import create_app
from marketpulse.clock import FakeClock
from marketpulse.onchain.chain import ChainClient, ChainUnavailable
from marketpulse.onchain.watcher import usdt_watcher
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings, UsdtChain
from support.accounts import SignedIn, session_for, sign_in_user
from support.chain import Anvil, json_chain
from support.waiting import eventually

CONFIRMATIONS = 3
TTL_S = 3600
WATCH_S = 40
INVOICE = "/api/v1/payments/usdt/invoice"


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    chain = Anvil.start()
    yield chain
    chain.stop()


@dataclass(frozen=True)
class Chain:
    anvil: Anvil
    token: str  # the configured mock USDT
    lookalike: str  # the same code at another address
    receiving: str  # this test's receiving address


@pytest.fixture
def chain(anvil: Anvil) -> Chain:
    return Chain(anvil, anvil.deploy_token(6), anvil.deploy_token(6), "0x" + secrets.token_hex(20))


@pytest.fixture
def clock(chain: Chain) -> FakeClock:
    return FakeClock(start_ms=chain.anvil.now_ms())  # the chain's time: expiry is judged by block time


@pytest.fixture
def settings(db_url: str, tmp_path: Path, chain: Chain, monkeypatch: pytest.MonkeyPatch) -> Settings:
    # through the environment, as an operator sets it
    monkeypatch.setenv("PULSE_USDT_CHAINS", json_chain("local", chain.anvil.url, chain.token, chain.receiving,
                                                       CONFIRMATIONS))
    monkeypatch.setenv("PULSE_USDT_WATCH_INTERVAL_S", str(WATCH_S))
    return Settings(database_url=db_url, bus_url="memory://", data_dir=tmp_path / "var", ingest_api_key="test-key",
                    jwt_secret_key="test-jwt-secret-of-at-least-32-bytes!", usdt_invoice_ttl_s=TTL_S)


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)),
                                 base_url="http://localhost") as c:
        yield c


async def signed_in(runtime: Runtime, plan: str = "free") -> SignedIn:
    return await sign_in_user(runtime, plan=plan)


async def invoice(client: httpx.AsyncClient, who: SignedIn, **body: Any) -> dict[str, Any]:
    r = await client.post(INVOICE, json={"chain": "local", **body}, headers=who.headers)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def submit(client: httpx.AsyncClient, who: SignedIn, invoice_id: str, tx_hash: str) -> httpx.Response:
    return await client.post(f"{INVOICE}/{invoice_id}/tx", json={"tx_hash": tx_hash}, headers=who.headers)


async def balance(client: httpx.AsyncClient, who: SignedIn) -> int:
    r = await client.get("/api/v1/account/credits", headers=who.headers)
    assert r.status_code == 200, r.text
    value: int = r.json()["balance"]
    return value


async def test_an_invoice_names_address_unique_amount_chain_and_expiry(
        client: httpx.AsyncClient, runtime: Runtime, chain: Chain, clock: FakeClock) -> None:
    who = await signed_in(runtime)
    first = await invoice(client, who, credit_pack="credits_1000")
    second = await invoice(client, who, credit_pack="credits_1000")
    assert first["receiving_address"] == chain.receiving and first["token"] == chain.token
    assert (first["chain"], first["chain_id"], first["decimals"], first["status"]) == ("local", 31337, 6, "pending")
    assert first["expires_at_ms"] == clock.now_ms() + TTL_S * 1000
    for inv in (first, second):  # $100 plus under a cent, exact to the token's last decimal
        assert 100_000_000 < int(inv["amount_units"]) < 100_010_000
        assert inv["amount"] == f"{int(inv['amount_units']) / 1e6:.6f}"
    assert first["amount_units"] != second["amount_units"]
    listed = (await client.get("/api/v1/payments/usdt/invoices", headers=who.headers)).json()["data"]
    assert {i["id"] for i in listed} == {first["id"], second["id"]}
    clock.advance(TTL_S * 1000 + 1)  # unpaid past its expiry: shown expired (a late payment may still come)
    again = await session_for(runtime, who.user_id)  # the first access token has expired meanwhile
    listed = (await client.get("/api/v1/payments/usdt/invoices", headers=again.headers)).json()["data"]
    assert [i["status"] for i in listed] == ["expired", "expired"]
    chains = (await client.get("/api/v1/payments/usdt/chains")).json()["data"]
    assert chains == [{"name": "local", "chain_id": 31337, "token": chain.token,
                       "receiving_address": chain.receiving, "confirmations": CONFIRMATIONS}]


async def test_bad_requests_name_their_field_and_other_users_invoices_are_404(
        client: httpx.AsyncClient, runtime: Runtime) -> None:
    who, other = await signed_in(runtime), await signed_in(runtime)
    for body, field in (({"chain": "mars", "plan": "pro"}, "chain"), ({"chain": "local", "plan": "free"}, "plan"),
                        ({"chain": "local", "credit_pack": "credits_3"}, "credit_pack")):
        r = await client.post(INVOICE, json=body, headers=who.headers)
        assert r.status_code == 422 and field in r.text, r.text
    assert (await client.post(INVOICE, json={"chain": "local", "plan": "pro"})).status_code == 401
    mine = await invoice(client, who, plan="pro")
    assert (await client.get(f"{INVOICE}/{mine['id']}", headers=other.headers)).status_code == 404
    r = await submit(client, other, mine["id"], "0x" + "ab" * 32)
    assert r.status_code == 404
    r = await submit(client, who, mine["id"], "0x1234")
    assert r.status_code == 422 and "tx_hash" in r.text
    r = await submit(client, who, mine["id"], "0x" + "ab" * 32)  # well-formed, but no such transaction
    assert r.status_code == 422 and "tx_hash" in r.text
    assert (await client.get(f"{INVOICE}/{mine['id']}", headers=who.headers)).json()["status"] == "pending"


async def test_a_pack_paid_by_hash_waits_for_confirmations_then_grants_once_and_the_hash_is_used_once(
        client: httpx.AsyncClient, runtime: Runtime, chain: Chain) -> None:
    who = await signed_in(runtime)
    start = await balance(client, who)
    inv = await invoice(client, who, credit_pack="credits_100")
    tx = chain.anvil.transfer(chain.token, chain.receiving, int(inv["amount_units"]))
    r = await submit(client, who, inv["id"], tx)
    assert r.status_code == 200 and r.json()["status"] == "confirming", r.text
    assert await balance(client, who) == start
    chain.anvil.mine(CONFIRMATIONS - 1)  # the transfer's block and two more: buried under 3
    r = await submit(client, who, inv["id"], tx)  # the same hash again: look again
    assert r.json()["status"] == "paid" and r.json()["credits_granted"] == 100, r.text
    assert r.json()["paid"] == inv["amount"]
    assert await balance(client, who) == start + 100
    assert (await submit(client, who, inv["id"], tx)).json()["status"] == "paid"
    assert await balance(client, who) == start + 100  # never twice
    ledger = (await client.get("/api/v1/account/credits", headers=who.headers)).json()["data"]
    assert [(e["kind"], e["amount"]) for e in ledger][0] == ("purchase", 100)
    replay = await invoice(client, who, credit_pack="credits_100")
    r = await submit(client, who, replay["id"], tx)  # a replayed hash pays no second invoice
    assert r.status_code == 409 and "tx_hash" in r.text
    other = await signed_in(runtime)
    theirs = await invoice(client, other, credit_pack="credits_100")
    assert (await submit(client, other, theirs["id"], tx)).status_code == 409


async def test_look_alike_token_failed_transaction_and_another_address_are_refused(
        client: httpx.AsyncClient, runtime: Runtime, chain: Chain) -> None:
    who = await signed_in(runtime)
    inv = await invoice(client, who, plan="pro")
    units = int(inv["amount_units"])
    a = chain.anvil
    cases = {
        "another token": a.transfer(chain.lookalike, chain.receiving, units),
        "failed": a.transfer(chain.token, chain.receiving, units, sender=a.accounts[3], gas=100_000),  # no balance
        "another address": a.transfer(chain.token, a.accounts[4], units),
    }
    a.mine(CONFIRMATIONS)
    for reason, tx in cases.items():
        r = await submit(client, who, inv["id"], tx)
        assert r.status_code == 422 and "tx_hash" in r.text and reason in r.text, (reason, r.text)
    assert await runtime.services.usdt.watch("local") == 0  # the watcher takes none of them either
    shown = (await client.get(f"{INVOICE}/{inv['id']}", headers=who.headers)).json()
    assert (shown["status"], shown["tx_hash"]) == ("pending", None)
    assert (await runtime.services.accounts.get_user(who.user_id)).plan == "free"  # type: ignore[union-attr]


async def test_under_over_and_late_payments_have_their_outcomes(
        client: httpx.AsyncClient, runtime: Runtime, chain: Chain) -> None:
    who = await signed_in(runtime)
    start = await balance(client, who)
    a = chain.anvil
    under = await invoice(client, who, credit_pack="credits_1000")
    over = await invoice(client, who, credit_pack="credits_100")
    late = await invoice(client, who, plan="elite")
    tx_under = a.transfer(chain.token, chain.receiving, 50_000_000)  # $50 of $100.00xxxx
    tx_over = a.transfer(chain.token, chain.receiving, int(over["amount_units"]) + 2_000_000)  # $2 more
    a.set_next_block_time(late["expires_at_ms"] // 1000 + 60)  # mined a minute after the expiry
    tx_late = a.transfer(chain.token, chain.receiving, int(late["amount_units"]))
    a.mine(CONFIRMATIONS)
    got = {name: (await submit(client, who, inv["id"], tx)).json()
           for name, inv, tx in (("under", under, tx_under), ("over", over, tx_over), ("late", late, tx_late))}
    assert (got["under"]["status"], got["under"]["credits_granted"]) == ("underpaid", 500)
    assert "50.000000" in got["under"]["note"]
    assert (got["over"]["status"], got["over"]["credits_granted"]) == ("paid", 120)  # the pack and $2 as 20
    assert (got["late"]["status"], got["late"]["credits_granted"]) == ("late", 990)  # $99.00xxxx as credits
    assert "expired" in got["late"]["note"]
    assert await balance(client, who) == start + 500 + 120 + 990
    assert (await runtime.services.accounts.get_user(who.user_id)).plan == "free"  # type: ignore[union-attr]


async def test_a_reorganisation_before_the_confirmations_sends_the_invoice_back_to_pending(
        client: httpx.AsyncClient, runtime: Runtime, chain: Chain) -> None:
    who = await signed_in(runtime)
    start = await balance(client, who)
    inv = await invoice(client, who, credit_pack="credits_100")
    before = chain.anvil.snapshot()
    tx = chain.anvil.transfer(chain.token, chain.receiving, int(inv["amount_units"]))
    assert (await submit(client, who, inv["id"], tx)).json()["status"] == "confirming"
    chain.anvil.revert(before)  # the block holding the transfer is gone
    chain.anvil.mine(CONFIRMATIONS + 1)
    await runtime.services.usdt.watch("local")
    shown = (await client.get(f"{INVOICE}/{inv['id']}", headers=who.headers)).json()
    assert (shown["status"], shown["tx_hash"], shown["credits_granted"]) == ("pending", None, 0)
    assert "reorganisation" in shown["note"]
    assert await balance(client, who) == start


async def test_the_watcher_under_its_lease_finds_unsubmitted_payments(
        client: httpx.AsyncClient, runtime: Runtime, chain: Chain, clock: FakeClock) -> None:
    who = await signed_in(runtime)
    inv = await invoice(client, who, plan="pro")
    noise = await invoice(client, who, credit_pack="credits_100")  # open, unpaid: stays pending
    tx = chain.anvil.transfer(chain.token, chain.receiving, int(inv["amount_units"]))
    watchers = [usdt_watcher(runtime) for _ in range(2)]  # two workers: the lease's holder watches

    async def status() -> str:
        r = await client.get(f"{INVOICE}/{inv['id']}", headers=who.headers)
        return str(r.json()["status"])

    for w in watchers:
        await w.start()
    try:
        assert [w.lease.held for w in watchers] == [True, False]
        await clock.parked(3)  # the keepers and the holder's first look are done: the transfer is not buried yet
        assert await status() == "pending"
        chain.anvil.mine(CONFIRMATIONS)
        clock.advance(WATCH_S * 1000 - 1_000)  # before PULSE_USDT_WATCH_INTERVAL_S: no look yet
        await clock.parked(3)
        assert await status() == "pending"
        clock.advance(1_000)
        await eventually(lambda: _is(status, "paid"), what="the watcher's match")
    finally:
        for w in watchers:
            await w.stop()
    shown = (await client.get(f"{INVOICE}/{inv['id']}", headers=who.headers)).json()
    assert shown["tx_hash"] == tx and shown["paid"] == inv["amount"]
    assert (await runtime.services.accounts.get_user(who.user_id)).plan == "pro"  # type: ignore[union-attr]
    assert (await client.get(f"{INVOICE}/{noise['id']}", headers=who.headers)).json()["status"] == "pending"
    async with runtime.sessions() as s:
        audit = list((await s.execute(select(AuditRow).where(AuditRow.target_id == who.user_id))).scalars())
    assert [(e.action, (e.new_values or {}).get("plan")) for e in audit
            if e.action == "payments.usdt_plan_changed"] == [
        ("payments.usdt_plan_changed", "pro")]
    assert await runtime.services.usdt.watch("local") == 0  # seen already: nothing twice


async def _is(read: Any, wanted: str) -> bool:
    return bool(await read() == wanted)


async def test_a_node_of_another_chain_or_none_at_all_is_unavailable_not_a_crash(chain: Chain) -> None:
    config = {"token": chain.token, "receiving_address": chain.receiving}
    mainnet = ChainClient("ethereum", UsdtChain(chain_id=1, rpc_url=chain.anvil.url, **config))
    dead = ChainClient("dead", UsdtChain(chain_id=31337, rpc_url="http://127.0.0.1:9", **config))
    try:
        with pytest.raises(ChainUnavailable, match="serves chain 31337, not 1"):
            await mainnet.decimals()
        with pytest.raises(ChainUnavailable, match="failed to answer"):
            await dead.receipt("0x" + "ab" * 32)
    finally:
        await mainnet.close()
        await dead.close()


async def test_a_plan_paid_in_usdt_runs_its_period_a_new_invoice_renews_it_and_then_it_drops_to_free(
        client: httpx.AsyncClient, runtime: Runtime, chain: Chain, clock: FakeClock) -> None:
    from marketpulse.onchain.service import PLAN_PERIOD_MS

    who = await signed_in(runtime)
    first, second = await invoice(client, who, plan="pro"), await invoice(client, who, plan="pro")
    tx = chain.anvil.transfer(chain.token, chain.receiving, int(first["amount_units"]))
    chain.anvil.mine(CONFIRMATIONS)
    assert (await submit(client, who, first["id"], tx)).json()["status"] == "paid"
    paid_at = clock.now_ms()
    view = await runtime.services.payments.billing(await runtime.services.accounts.get_user(who.user_id))  # type: ignore[arg-type]
    assert (view["plan"], view["usdt_plan"], view["usdt_paid_until_ms"]) == ("pro", "pro", paid_at + PLAN_PERIOD_MS)

    clock.advance(PLAN_PERIOD_MS // 2)  # renewed half-way: the new period follows on from the first
    tx = chain.anvil.transfer(chain.token, chain.receiving, int(second["amount_units"]))
    chain.anvil.mine(CONFIRMATIONS)
    assert await runtime.services.usdt.watch("local") == 1  # found by the watcher this time
    assert await runtime.services.usdt.paid_until(who.user_id) == ("pro", paid_at + 2 * PLAN_PERIOD_MS)

    usdt = runtime.services.usdt
    clock.set(paid_at + 2 * PLAN_PERIOD_MS - 1)
    assert await usdt.expire_terms() == 0
    assert (await runtime.services.accounts.get_user(who.user_id)).plan == "pro"  # type: ignore[union-attr]
    clock.set(paid_at + 2 * PLAN_PERIOD_MS)
    assert await usdt.expire_terms() == 1
    assert (await runtime.services.accounts.get_user(who.user_id)).plan == "free"  # type: ignore[union-attr]
    assert await usdt.expire_terms() == 0 and await usdt.paid_until(who.user_id) is None
    async with runtime.sessions() as s:
        actions = list((await s.execute(select(AuditRow.action).where(AuditRow.target_id == who.user_id)
                                        .order_by(AuditRow.id))).scalars())
    assert actions[-1] == "payments.usdt_plan_expired" and "payments.usdt_plan_changed" in actions
