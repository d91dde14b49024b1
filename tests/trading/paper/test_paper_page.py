"""`/paper` rendered server-side: every registered strategy with its parameters and defaults, the API's intervals,
and the account's current state as bootstrap JSON (so the page paints before its first poll)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from marketpulse.api.app import create_app
from marketpulse.marketdata.intervals import Interval
from marketpulse.marketdata.models import MarketRow
from marketpulse.runtime import Runtime
from marketpulse.strategies import REGISTRY
from marketpulse.trading.paper.page import INTERVALS
from marketpulse.trading.paper.views import DeploymentIn
from support.accounts import authorize

from .helpers import MINUTE, T0, candle  # tests/paper helpers


class Form(HTMLParser):
    """The bits of the page under test: fieldsets per strategy, their controls, selects' options, the bootstrap."""

    def __init__(self) -> None:
        super().__init__()
        self.fieldsets: dict[str, dict[str, str | None]] = {}
        self.controls: dict[str, dict[str, dict[str, str | None]]] = {}  # strategy → param → attributes
        self.options: dict[str, list[tuple[str, bool]]] = {}  # select name/param → (value, selected)
        self.bootstrap = ""
        self._strategy: str | None = None
        self._select: str | None = None
        self._in_bootstrap = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        strategy = a.get("data-strategy")
        if tag == "fieldset" and strategy:
            self._strategy = strategy
            self.fieldsets[strategy] = a
            self.controls[strategy] = {}
        elif tag in ("input", "select") and self._strategy and a.get("data-param"):
            self.controls[self._strategy][a["data-param"] or ""] = {"tag": tag, **a}
        if tag == "select":
            self._select = f"{self._strategy}.{a['data-param']}" if a.get("data-param") else a.get("name")
            self.options[self._select or ""] = []
        elif tag == "datalist":
            self._select = f"#{a.get('id')}"
            self.options[self._select] = []
        elif tag == "option" and self._select:
            self.options[self._select].append((a.get("value") or "", "selected" in a))
        elif tag == "script" and a.get("id") == "bootstrap":
            self._in_bootstrap = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "fieldset":
            self._strategy = None
        elif tag in ("select", "datalist"):
            self._select = None
        elif tag == "script":
            self._in_bootstrap = False

    def handle_data(self, data: str) -> None:
        if self._in_bootstrap:
            self.bootstrap += data


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
        await authorize(c, runtime)  # the page is the signed-in user's account
        yield c


async def page(client: httpx.AsyncClient) -> Form:
    resp = await client.get("/paper")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    form = Form()
    form.feed(resp.text)
    return form


def shown(value: Any) -> str:
    return str(value)  # how Jinja prints a default into value="…"


async def test_every_strategy_renders_with_its_params_and_defaults(client: httpx.AsyncClient) -> None:
    form = await page(client)
    assert set(form.fieldsets) == set(REGISTRY)
    assert [v for v, _ in form.options["strategy"]] == sorted(REGISTRY)
    # Only the selected (first) strategy's fieldset is live; the others are hidden and disabled.
    live = [name for name, a in form.fieldsets.items() if "hidden" not in a]
    assert live == [form.options["strategy"][0][0]]
    for name, cls in REGISTRY.items():
        controls = form.controls[name]
        assert list(controls) == [p.name for p in cls.params], name
        for p in cls.params:
            c = controls[p.name]
            assert c["data-kind"] == p.kind.__name__
            if p.choices:
                assert c["tag"] == "select"
                assert form.options[f"{name}.{p.name}"] == [(shown(v), v == p.default) for v in p.choices]
            elif p.kind is bool:
                assert c["type"] == "checkbox" and ("checked" in c) == p.default
            else:
                assert c["value"] == shown(p.default), (name, p.name)
                assert c.get("min") == (None if p.low is None else shown(p.low))
                assert c.get("max") == (None if p.high is None else shown(p.high))


async def test_ut_bot_bool_and_choice_params_get_their_controls(client: httpx.AsyncClient) -> None:
    # The registry's one bool and one choices parameter: the generic loop above needs them to exist to mean much.
    controls = (await page(client)).controls["ut_bot"]
    assert controls["heikin_ashi"]["type"] == "checkbox" and "checked" not in controls["heikin_ashi"]
    assert controls["mode"]["tag"] == "select"


async def test_forms_offer_what_the_api_accepts(client: httpx.AsyncClient) -> None:
    form = await page(client)
    assert tuple(Interval) == INTERVALS  # the one set the API accepts
    assert form.options["interval"] == [(i, i == DeploymentIn.model_fields["interval"].default) for i in INTERVALS]
    assert [v for v, _ in form.options["type"]] == ["market", "limit", "stop"]
    assert [v for v, _ in form.options["side"]] == ["buy", "sell"]
    assert [v for v, _ in form.options["time_in_force"]] == ["gtc", "day", "ioc"]


async def test_a_signed_out_visitor_is_sent_to_sign_in_and_back(runtime: Runtime) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)),
                                 base_url="http://localhost") as anonymous:
        resp = await anonymous.get("/paper")
        assert resp.status_code == 303 and resp.headers["location"] == "/signin?next=%2Fpaper"
        expired = await anonymous.get("/paper", headers={"Authorization": "Bearer not-a-token"})
        assert expired.status_code == 303  # a dead session is signed out too, not an error page


async def test_symbol_fields_suggest_the_live_markets_symbols(runtime: Runtime) -> None:
    app = create_app(runtime)
    assert (await page_of(app, runtime)).options["#symbols"] == []  # no tickers yet: nothing to suggest
    rows = [MarketRow(symbol, T0, price=1.0, change_pct_24h=0.0, quote_volume_24h=1.0) for symbol in ("ETHUSDT",
                                                                                                    "BTCUSDT")]
    app.other_asgi_app.state.market_feed.apply_rows(rows)
    assert (await page_of(app, runtime)).options["#symbols"] == [("BTCUSDT", False), ("ETHUSDT", False)]


async def page_of(app: Any, runtime: Runtime) -> Form:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as c:
        await authorize(c, runtime)
        return await page(c)


async def test_bootstrap_carries_the_accounts_current_state(client: httpx.AsyncClient, runtime: Runtime) -> None:
    empty = json.loads((await page(client)).bootstrap)
    assert empty["refreshMs"] == 2000
    assert empty["snapshot"]["account"]["equity"] == runtime.settings.paper_starting_balance
    assert empty["snapshot"]["positions"] == [] and empty["snapshot"]["orders"] == []

    paper = runtime.services.paper
    await paper.on_candles([candle("BTCUSDT", T0 - MINUTE, 60_000.0)])
    market = await client.post("/api/v1/paper/orders", json={"symbol": "BTCUSDT", "side": "buy", "quantity": 0.1})
    limit = await client.post("/api/v1/paper/orders", json={
        "symbol": "BTCUSDT", "side": "buy", "type": "limit", "quantity": 0.1, "limit_price": 50_000})
    assert market.status_code == limit.status_code == 201
    await paper.on_candles([candle("BTCUSDT", T0, 60_100.0, c=60_300.0)])
    deployed = await client.post("/api/v1/paper/deployments", json={
        "strategy": "ema_cross", "symbol": "BTCUSDT", "interval": "1m", "params": {"fast": 5}})
    assert deployed.status_code == 201, deployed.text

    snap = json.loads((await page(client)).bootstrap)["snapshot"]
    [pos] = snap["positions"]
    assert pos["symbol"] == "BTCUSDT" and pos["side"] == "long" and pos["avg_price"] == 60_100.0
    assert pos["unrealized_pnl"] == pytest.approx(20.0)
    assert [o["id"] for o in snap["orders"]] == [limit.json()["id"]]  # open orders only: the filled one is gone
    assert [f["order_id"] for f in snap["fills"]] == [market.json()["id"]]
    [dep] = snap["deployments"]
    assert dep["strategy"] == "ema_cross" and dep["params"] == {"fast": 5, "slow": 26} and dep["status"] == "running"


async def test_script_is_served(client: httpx.AsyncClient) -> None:
    resp = await client.get("/paper/static/paper.js")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/javascript")
    assert "/api/v1/paper" in resp.text
    assert (await client.get("/paper/static/other.js")).status_code == 404


async def test_dashboard_links_to_the_paper_page(client: httpx.AsyncClient) -> None:
    resp = await client.get("/")
    # The nav bar every page carries is drawn by site.js (it knows the sign-in state); it links the paper page.
    assert resp.status_code == 200 and 'id="site-nav"' in resp.text and "/static/site.js" in resp.text
    assert '["/paper", "Paper", "paper"]' in (await client.get("/static/site.js")).text  # a section of the nav
