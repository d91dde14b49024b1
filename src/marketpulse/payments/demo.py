"""What `pulse demo` adds for payments: a local fake Stripe (`devstripe.py`) with a Price for each paid plan and
credit pack, its checkout page's "Pay" button sending signed webhooks to this demo, so upgrading by card works end
to end without a Stripe account. A configured real Stripe (PULSE_STRIPE_SECRET_KEY) is left alone."""

from __future__ import annotations

import secrets

import structlog
from pydantic import SecretStr

from marketpulse.accounts.plans import CREDIT_PACKS, PLANS, STRIPE_PRICE_SETTINGS
from marketpulse.payments.devstripe import FakeStripe, Price
from marketpulse.payments.service import PaymentsService

log = structlog.get_logger(__name__)

METERED_PRICE = "price_demo_api_calls"


def demo_prices() -> dict[str, tuple[str, Price]]:
    """Each product's demo Price id and amount, from the plan table."""
    out = {p.name: (f"price_demo_{p.name}", Price(round(p.price_per_month_usd * 100), recurring=True))
           for p in PLANS if p.name in STRIPE_PRICE_SETTINGS and p.price_per_month_usd}
    out.update({c.name: (f"price_demo_{c.name}", Price(round(c.price_usd * 100), recurring=False))
                for c in CREDIT_PACKS})
    return out


async def start_demo_payments(payments: PaymentsService, host: str, port: int) -> FakeStripe | None:
    settings = payments.settings
    if settings.stripe_secret_key is not None:
        return None
    prices = demo_prices()
    fake = FakeStripe(payments.clock, api_key=f"sk_test_demo_{secrets.token_hex(12)}",
                      webhook_secret=f"whsec_demo_{secrets.token_hex(16)}",
                      webhook_url=f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
                                  "/api/v1/payments/webhook",
                      prices={price_id: price for price_id, price in prices.values()},
                      meters={settings.stripe_meter_event_name})
    fake.prices[METERED_PRICE] = Price(1, recurring=True)  # API calls past the quota, per call (a cent)
    await fake.start()
    settings.stripe_secret_key = SecretStr(fake.api_key)
    settings.stripe_webhook_secret = SecretStr(fake.webhook_secret)
    settings.stripe_api_base = fake.base_url
    settings.stripe_price_api_calls = METERED_PRICE
    for name, (price_id, _) in prices.items():
        setattr(settings, STRIPE_PRICE_SETTINGS[name], price_id)
    payments.dev_stripe = fake
    log.info("demo fake Stripe started", url=fake.base_url)
    return fake
