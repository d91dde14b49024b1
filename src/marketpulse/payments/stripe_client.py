"""The Stripe API through the official `stripe` library (async, over httpx), its base URL a setting so tests and
`pulse demo` point the real client at a local fake Stripe that speaks the same wire format.

Every POST carries an `Idempotency-Key` we choose from what the request means (the user and what they buy, with a
nonce per attempt), so a retried request never makes a second Checkout Session or Customer.
"""

from __future__ import annotations

from typing import Any

import stripe

from marketpulse.settings import Settings


class PaymentsNotConfigured(Exception):
    """PULSE_STRIPE_SECRET_KEY is unset."""


class StripeGateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: stripe.StripeClient | None = None
        self._http: stripe.HTTPXClient | None = None

    @property
    def configured(self) -> bool:
        return self.settings.stripe_secret_key is not None

    def client(self) -> stripe.StripeClient:
        if self.settings.stripe_secret_key is None:
            raise PaymentsNotConfigured("card payments are not configured (PULSE_STRIPE_SECRET_KEY)")
        if self._client is None:
            base = self.settings.stripe_api_base.rstrip("/")
            self._http = stripe.HTTPXClient()
            self._client = stripe.StripeClient(
                self.settings.stripe_secret_key.get_secret_value(),
                base_addresses={"api": base}, http_client=self._http, max_network_retries=2)
        return self._client

    async def close(self) -> None:
        """Close the pooled connections (at shutdown)."""
        if self._http is not None:
            await self._http.close_async()
            self._http = self._client = None

    async def create_customer(self, *, email: str, user_id: str, idempotency_key: str) -> str:
        customer = await self.client().v1.customers.create_async(
            {"email": email, "metadata": {"user_id": user_id}}, {"idempotency_key": idempotency_key})
        return str(customer.id)

    async def create_checkout(self, params: dict[str, Any], *, idempotency_key: str) -> tuple[str, str]:
        """A Checkout Session; its id and the URL to send the browser to."""
        session = await self.client().v1.checkout.sessions.create_async(
            params, {"idempotency_key": idempotency_key})  # type: ignore[arg-type]
        return str(session.id), str(session.url)

    async def portal(self, *, customer_id: str, return_url: str) -> str:
        session = await self.client().v1.billing_portal.sessions.create_async(
            {"customer": customer_id, "return_url": return_url})
        return str(session.url)

    async def invoices(self, customer_id: str, limit: int = 12) -> list[dict[str, Any]]:
        found = await self.client().v1.invoices.list_async({"customer": customer_id, "limit": limit})
        return [inv.to_dict() for inv in found.data]

    async def refund(self, *, payment_intent: str, idempotency_key: str) -> str:
        """Refund a payment in full; Stripe then sends `charge.refunded`, which takes the credits back."""
        refund = await self.client().v1.refunds.create_async({"payment_intent": payment_intent},
                                                             {"idempotency_key": idempotency_key})
        return str(refund.id)

    async def meter_event(self, *, event_name: str, customer_id: str, value: int, identifier: str,
                          timestamp_s: int) -> None:
        """One usage report (Billing Meter Events); `identifier` makes a repeat of it count once at Stripe."""
        await self.client().v1.billing.meter_events.create_async(
            {"event_name": event_name, "identifier": identifier, "timestamp": timestamp_s,
             "payload": {"stripe_customer_id": customer_id, "value": str(value)}},
            {"idempotency_key": f"meter:{identifier}"})
