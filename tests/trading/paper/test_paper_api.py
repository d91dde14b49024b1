"""The paper-trading HTTP API on a small app: orders, 422 field errors, 409 risk reasons, owners, deployments."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from marketpulse.accounts.tables import UserRow
from marketpulse.marketdata.models import MarketRow
from marketpulse.realtime.market_feed import MarketFeed
from marketpulse.runtime import Runtime
from marketpulse.trading.paper.views import router
from support.accounts import authorize, sign_in_user

from .helpers import MINUTE, T0, candle, listed


@pytest.fixture
async def app(runtime: Runtime) -> FastAPI:
    application = FastAPI()
    application.state.runtime = runtime
    application.include_router(router)
    return application


@pytest.fixture(autouse=True)
async def market(runtime: Runtime) -> None:
    await listed(runtime, "BTCUSDT", price=100_000.0)


@pytest.fixture
async def client(app: FastAPI, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        await authorize(c, runtime)  # a signed-in pro user
        yield c


def field_errors(resp: httpx.Response) -> dict[str, str]:
    assert resp.status_code == 422, resp.text
    return {".".join(str(p) for p in e["loc"][1:]): e["msg"] for e in resp.json()["detail"]}


async def test_order_lifecycle_over_http(client: httpx.AsyncClient, runtime: Runtime) -> None:
    account = (await client.get("/api/v1/paper/account")).json()
    assert account["balance"] == account["equity"] == runtime.settings.paper_starting_balance
    assert account["plan"] == "pro" and account["halted"] is False
    resp = await client.post("/api/v1/paper/orders", json={
        "symbol": "btc-usdt", "side": "buy", "type": "limit", "quantity": 0.1, "limit_price": 100.0,
        "time_in_force": "gtc",
    })
    assert resp.status_code == 201, resp.text
    order = resp.json()
    assert order["symbol"] == "BTCUSDT" and order["status"] == "open"
    assert [o["id"] for o in (await client.get("/api/v1/paper/orders?status=open")).json()["data"]] == [order["id"]]
    cancelled = await client.delete(f"/api/v1/paper/orders/{order['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = await client.delete(f"/api/v1/paper/orders/{order['id']}")
    assert again.status_code == 409 and again.json()["detail"]["reason"] == "order_not_open"
    assert (await client.delete("/api/v1/paper/orders/nope")).status_code == 404


async def test_filled_market_order_shows_in_positions_and_fills(client: httpx.AsyncClient, runtime: Runtime) -> None:
    paper = runtime.services.paper
    await paper.on_candles([candle("ETHUSDT", T0 - MINUTE, 4_000.0)])
    resp = await client.post("/api/v1/paper/orders", json={"symbol": "ETHUSDT", "side": "sell", "quantity": 1})
    assert resp.status_code == 201, resp.text
    await paper.on_candles([candle("ETHUSDT", T0, 4_010.0, c=3_990.0)])
    [pos] = (await client.get("/api/v1/paper/positions")).json()["data"]
    assert pos["side"] == "short" and pos["avg_price"] == 4_010.0 and pos["unrealized_pnl"] == pytest.approx(20.0)
    [fill] = (await client.get("/api/v1/paper/fills")).json()["data"]
    assert fill["order_id"] == resp.json()["id"] and fill["price"] == 4_010.0


async def test_bad_orders_answer_422_naming_the_field(client: httpx.AsyncClient) -> None:
    errors = field_errors(await client.post("/api/v1/paper/orders", json={
        "symbol": "BTCUSDT", "side": "hold", "type": "limit", "quantity": -1,
    }))
    assert set(errors) == {"side", "quantity", "limit_price"}
    assert "required for limit orders" in errors["limit_price"]
    errors = field_errors(await client.post("/api/v1/paper/orders", json={
        "symbol": "BTCUSDT", "side": "buy", "type": "market", "quantity": 1, "stop_price": 5, "time_in_force": "fok",
    }))
    assert set(errors) == {"stop_price", "time_in_force"}
    assert (await client.get("/api/v1/paper/orders")).json()["data"] == []  # nothing stored


async def test_risk_rejection_is_409_with_a_reason(client: httpx.AsyncClient) -> None:
    resp = await client.post("/api/v1/paper/orders", json={
        "symbol": "BTCUSDT", "side": "buy", "type": "limit", "quantity": 10, "limit_price": 100_000,
    })
    assert resp.status_code == 409
    detail = resp.json()["detail"]
    assert detail["reason"] == "max_position_size" and detail["limit"] == 100_000.0 and detail["value"] == 1e6
    assert (await client.get("/api/v1/paper/orders")).json()["data"] == []


async def test_each_owner_sees_only_their_own(client: httpx.AsyncClient, runtime: Runtime) -> None:
    alice, bob = await sign_in_user(runtime), await sign_in_user(runtime)
    resp = await client.post("/api/v1/paper/orders", headers=alice.headers, json={
        "symbol": "BTCUSDT", "side": "buy", "type": "limit", "quantity": 0.1, "limit_price": 1.0,
    })
    order_id = resp.json()["id"]
    assert (await client.get("/api/v1/paper/orders", headers=bob.headers)).json()["data"] == []
    assert (await client.get(f"/api/v1/paper/orders/{order_id}", headers=bob.headers)).status_code == 404
    assert (await client.delete(f"/api/v1/paper/orders/{order_id}", headers=bob.headers)).status_code == 404
    assert (await client.get(f"/api/v1/paper/orders/{order_id}", headers=alice.headers)).status_code == 200


async def test_the_users_plan_now_sets_the_position_limit(client: httpx.AsyncClient, runtime: Runtime) -> None:
    trader = await sign_in_user(runtime, plan="free")  # the plan table's free: 3 concurrent positions
    symbols = ["AUSDT", "BUSDT", "CUSDT", "DUSDT"]
    await listed(runtime, *symbols)
    for symbol in symbols[:3]:
        placed = await client.post("/api/v1/paper/orders", headers=trader.headers,
                                   json={"symbol": symbol, "side": "buy", "quantity": 1})
        assert placed.status_code == 201, placed.text
    await runtime.services.paper.on_candles([candle(sym, T0, 100.0) for sym in symbols[:3]])  # all three fill
    assert len((await client.get("/api/v1/paper/positions", headers=trader.headers)).json()["data"]) == 3
    fourth = {"symbol": symbols[3], "side": "buy", "quantity": 1}
    refused = await client.post("/api/v1/paper/orders", headers=trader.headers, json=fourth)
    assert refused.status_code == 409 and refused.json()["detail"]["reason"] == "max_concurrent_positions"
    assert refused.json()["detail"]["limit"] == 3
    async with runtime.sessions() as s:  # an upgrade, as the admin API stores it; the same token goes on
        await s.execute(update(UserRow).where(UserRow.id == trader.user_id).values(plan="pro"))
        await s.commit()
    assert (await client.post("/api/v1/paper/orders", headers=trader.headers, json=fourth)).status_code == 201
    assert (await client.get("/api/v1/paper/account", headers=trader.headers)).json()["plan"] == "pro"


async def test_deployments_validate_list_and_stop(client: httpx.AsyncClient) -> None:
    errors = field_errors(await client.post("/api/v1/paper/deployments", json={
        "strategy": "nope", "symbol": "BTCUSDT", "interval": "7m",
    }))
    assert set(errors) == {"strategy", "interval"} and "known:" in errors["strategy"]
    errors = field_errors(await client.post("/api/v1/paper/deployments", json={
        "strategy": "ema_cross", "symbol": "BTCUSDT", "params": {"fast": 30, "slow": 10},
    }))
    assert set(errors) == {"params"} and "fast" in errors["params"]
    resp = await client.post("/api/v1/paper/deployments", json={
        "strategy": "ema_cross", "symbol": "BTCUSDT", "interval": "5m", "params": {"fast": 3},
    })
    assert resp.status_code == 201, resp.text
    dep = resp.json()
    assert dep["status"] == "running" and dep["params"] == {"fast": 3, "slow": 26} and dep["cash"] == 10_000.0
    assert [d["id"] for d in (await client.get("/api/v1/paper/deployments")).json()["data"]] == [dep["id"]]
    stopped = await client.post(f"/api/v1/paper/deployments/{dep['id']}/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert (await client.post("/api/v1/paper/deployments/nope/stop")).status_code == 404


async def test_the_issues_bypass_orders_are_refused_at_the_market_price(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # Section 8.1's two orders: judged at their own 0.01 they looked tiny; they fill at the market, 358k and 400k.
    paper = runtime.services.paper
    await paper.on_candles([candle("ETHUSDT", T0 - MINUTE, 3_580.0), candle("SOLUSDT", T0 - MINUTE, 200.0)])
    sell = await client.post("/api/v1/paper/orders", json={
        "symbol": "ETHUSDT", "side": "sell", "type": "limit", "quantity": 100, "limit_price": 0.01})
    buy = await client.post("/api/v1/paper/orders", json={
        "symbol": "SOLUSDT", "side": "buy", "type": "stop", "quantity": 2000, "stop_price": 0.01})
    for resp, notional in ((sell, 358_000.0), (buy, 400_000.0)):
        assert resp.status_code == 409, resp.text
        detail = resp.json()["detail"]
        assert detail["reason"] == "max_position_size" and detail["value"] == pytest.approx(notional)
        assert f"{notional:,.2f} in notional" in detail["message"]
    # Ten positions of 100k can't stand on a 10k balance: the margin check stops the first one.
    big = await client.post("/api/v1/paper/orders", json={"symbol": "BTCUSDT", "side": "buy", "quantity": 0.5})
    assert big.status_code == 409 and big.json()["detail"]["reason"] == "insufficient_margin"
    assert "50,000.00 of margin at 1x leverage; equity is 10,000.00" in big.json()["detail"]["message"]
    assert (await client.get("/api/v1/paper/orders")).json()["data"] == []


async def test_unknown_symbols_are_refused_naming_the_field(client: httpx.AsyncClient) -> None:
    order = field_errors(await client.post("/api/v1/paper/orders", json={
        "symbol": "NOPEUSDT", "side": "buy", "type": "limit", "quantity": 1, "limit_price": 1.0}))
    assert set(order) == {"symbol"} and "unknown symbol NOPEUSDT" in order["symbol"]
    deploy = field_errors(await client.post("/api/v1/paper/deployments", json={
        "strategy": "ema_cross", "symbol": "NOPEUSDT", "interval": "5m"}))
    assert set(deploy) == {"symbol"} and "no market data" in deploy["symbol"]
    assert (await client.get("/api/v1/paper/orders")).json()["data"] == []
    assert (await client.get("/api/v1/paper/deployments")).json()["data"] == []


async def test_a_position_closes_in_one_action(client: httpx.AsyncClient, runtime: Runtime) -> None:
    paper = runtime.services.paper
    await paper.on_candles([candle("ETHUSDT", T0 - MINUTE, 4_000.0)])
    await client.post("/api/v1/paper/orders", json={"symbol": "ETHUSDT", "side": "buy", "quantity": 2})
    await paper.on_candles([candle("ETHUSDT", T0, 4_000.0, c=4_050.0)])
    await paper.on_marks({"ETHUSDT": 4_100.0})  # the market now
    resp = await client.post("/api/v1/paper/positions/eth-usdt/close")
    assert resp.status_code == 200, resp.text
    order = resp.json()
    assert (order["side"], order["type"], order["quantity"], order["status"]) == ("sell", "market", 2.0, "filled")
    assert order["fill_price"] == 4_100.0 and order["fee"] == pytest.approx(2 * 4_100.0 * 4 / 10_000)
    assert (await client.get("/api/v1/paper/positions")).json()["data"] == []
    account = (await client.get("/api/v1/paper/account")).json()
    assert account["realized_pnl"] == pytest.approx(200.0) and account["open_positions"] == 0
    again = await client.post("/api/v1/paper/positions/ETHUSDT/close")
    assert again.status_code == 404


async def test_a_marketable_limit_pays_the_taker_fee_and_a_resting_one_the_maker_fee(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    paper = runtime.services.paper
    await paper.on_candles([candle("ETHUSDT", T0 - MINUTE, 4_000.0)])
    taker = (await client.post("/api/v1/paper/orders", json={
        "symbol": "ETHUSDT", "side": "buy", "type": "limit", "quantity": 1, "limit_price": 4_100.0})).json()
    maker = (await client.post("/api/v1/paper/orders", json={
        "symbol": "ETHUSDT", "side": "sell", "type": "limit", "quantity": 1, "limit_price": 4_200.0})).json()
    await paper.on_candles([candle("ETHUSDT", T0, 4_010.0, h=4_250.0, low=4_000.0, c=4_200.0)])
    assert taker["taker"] is True and maker["taker"] is False  # decided when placed, against the mark
    taker_fill = (await client.get(f"/api/v1/paper/orders/{taker['id']}")).json()
    maker_fill = (await client.get(f"/api/v1/paper/orders/{maker['id']}")).json()
    assert taker_fill["fill_price"] == 4_010.0 and taker_fill["fee"] == pytest.approx(4_010.0 * 4 / 10_000)
    assert maker_fill["fill_price"] == 4_200.0 and maker_fill["fee"] == pytest.approx(4_200.0 * 2 / 10_000)


async def test_the_live_market_table_knows_symbols_and_prices_orders(app: FastAPI, client: httpx.AsyncClient) -> None:
    feed = MarketFeed()
    feed.apply_rows([MarketRow("XRPUSDT", T0, price=2.5, change_pct_24h=0.0, quote_volume_24h=1.0)])
    app.state.market_feed = feed  # tickers only: no candle of XRPUSDT is stored yet
    ok = await client.post("/api/v1/paper/orders", json={
        "symbol": "XRPUSDT", "side": "buy", "type": "limit", "quantity": 10, "limit_price": 2.0})
    assert ok.status_code == 201, ok.text
    # A sell limit far below the market is judged at the live price: (50,000 − the resting buy's 10) × 2.50.
    big = await client.post("/api/v1/paper/orders", json={
        "symbol": "XRPUSDT", "side": "sell", "type": "limit", "quantity": 50_000, "limit_price": 0.0001})
    assert big.status_code == 409 and big.json()["detail"]["value"] == pytest.approx(124_975.0)
