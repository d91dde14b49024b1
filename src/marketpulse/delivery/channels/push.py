"""Web push with VAPID (pywebpush): the destination's address is the browser's PushSubscription as JSON
(`endpoint`, `keys.p256dh`, `keys.auth`). pywebpush is synchronous (requests), so it runs in a thread. A 404 or
410 from the push service means the subscription is gone (permanent); 429 and 5xx are retried."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from marketpulse.delivery.channels.base import Context, Delivery
from marketpulse.delivery.core import DeliveryError, http_error
from marketpulse.delivery.templates import card


def parse_subscription(address: str) -> dict[str, Any]:
    """The subscription JSON, or ValueError saying what is missing."""
    try:
        sub = json.loads(address)
    except ValueError:
        raise ValueError("must be a PushSubscription as JSON (endpoint, keys.p256dh, keys.auth)") from None
    if not (isinstance(sub, dict) and isinstance(sub.get("endpoint"), str) and isinstance(sub.get("keys"), dict)
            and {"p256dh", "auth"} <= set(sub["keys"])):
        raise ValueError("must be a PushSubscription as JSON (endpoint, keys.p256dh, keys.auth)")
    return sub


def _push(ctx: Context, subscription: dict[str, Any], data: str) -> None:
    from pywebpush import WebPushException, webpush

    s = ctx.settings
    if s.vapid_private_key is None:
        raise DeliveryError("web push is not configured (PULSE_VAPID_PRIVATE_KEY)")
    try:
        webpush(subscription_info=subscription, data=data, vapid_private_key=s.vapid_private_key.get_secret_value(),
                vapid_claims={"sub": s.vapid_subject}, timeout=s.delivery_timeout_s, ttl=3600)
    except WebPushException as exc:
        response = exc.response
        if response is None:
            raise DeliveryError(f"push service unreachable: {exc.message}") from None
        retry_after = response.headers.get("Retry-After")
        raise http_error(response.status_code, response.text,
                         float(retry_after) if retry_after and retry_after.isdigit() else None) from None
    except OSError as exc:
        raise DeliveryError(f"push service unreachable: {type(exc).__name__}") from None


async def send_push(ctx: Context, address: str, payload: dict[str, Any]) -> None:
    try:
        subscription = parse_subscription(address)
    except ValueError as exc:
        raise DeliveryError(str(exc), permanent=True) from None
    await asyncio.to_thread(_push, ctx, subscription, json.dumps(payload))


class PushProvider:
    name = "push"

    async def send(self, delivery: Delivery, ctx: Context, now_ms: int) -> None:
        await send_push(ctx, delivery.address, card(delivery.rendered(ctx.settings.public_url)))
