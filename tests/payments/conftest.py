"""Payments under test: the app's accounts, credits and payments routers on the runtime's services, the official
`stripe` client pointed at a local fake Stripe (real wire format), whose webhooks come back into the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from accounts.conftest import Sink, bearer, signin, signup_verified, smtp  # noqa: F401, I001 (a fixture; tests/accounts)
from fakes.stripe_server import FakeStripe, Price
from marketpulse.accounts import admin_views, views
from marketpulse.api.errors import install_error_handlers
from marketpulse.clock import FakeClock
from marketpulse.credits import views as credit_views
from marketpulse.payments import views as payment_views
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings

API_KEY = "sk_test_marketpulse_fake_key"
SECRET = "whsec_test_current_secret"
OLD_SECRET = "whsec_test_rotated_out_soon"
PRICES = {"price_pro_m": Price(2900, recurring=True), "price_elite_m": Price(9900, recurring=True),
          "price_c100": Price(1000, recurring=False), "price_c1000": Price(10_000, recurring=False)}
WEBHOOK = "/api/v1/payments/webhook"
GRACE_S = 3 * 86_400


@pytest.fixture
def sink(smtp: tuple[Sink, int]) -> Sink:  # noqa: F811
    return smtp[0]


@pytest.fixture
async def stripe_fake(clock: FakeClock) -> AsyncIterator[FakeStripe]:
    fake = FakeStripe(clock, api_key=API_KEY, webhook_secret=SECRET, webhook_url=WEBHOOK, prices=dict(PRICES))
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def settings(db_url: str, tmp_path: Path, smtp: tuple[Sink, int], stripe_fake: FakeStripe) -> Settings:  # noqa: F811
    return Settings(database_url=db_url, bus_url="memory://", data_dir=tmp_path / "var", ingest_api_key="test-key",
                    smtp_host="127.0.0.1", smtp_port=smtp[1], jwt_secret_key="test-jwt-secret-of-at-least-32-bytes!",
                    public_url="http://test", stripe_secret_key=SecretStr(API_KEY),
                    stripe_api_base=stripe_fake.base_url,
                    stripe_webhook_secret=SecretStr(f"{SECRET},{OLD_SECRET}"), stripe_price_pro="price_pro_m",
                    stripe_price_elite="price_elite_m", stripe_price_credits_100="price_c100",
                    stripe_price_credits_1000="price_c1000", stripe_grace_period_s=GRACE_S)


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    application = FastAPI()
    application.state.runtime = runtime
    install_error_handlers(application)
    for module in (views, admin_views, credit_views, payment_views):
        application.include_router(module.router)
    return application


@pytest.fixture
async def client(app: FastAPI, stripe_fake: FakeStripe) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        stripe_fake.webhook_client = c  # the fake's webhooks reach this app
        yield c


async def user_headers(client: httpx.AsyncClient, sink: Sink, email: str) -> tuple[str, dict[str, str]]:
    """A verified, signed-in user: their id and Authorization header."""
    user_id = await signup_verified(client, sink, email)
    return user_id, bearer(await signin(client, email))


async def pay(client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> str:
    """Checkout, then press the fake's Pay button (which sends the webhooks); the Checkout Session id."""
    resp = await client.post("/api/v1/payments/checkout", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    async with httpx.AsyncClient() as browser:
        paid = await browser.post(resp.json()["url"], data={"card": "4242424242424242"})
    assert paid.status_code == 303, paid.text
    assert paid.headers["location"] == f"http://test/checkout/success?session_id={resp.json()['id']}"
    return str(resp.json()["id"])
