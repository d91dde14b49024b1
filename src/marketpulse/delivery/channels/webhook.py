"""Webhooks: a JSON POST signed like Stripe's (`X-Pulse-Signature: t=…,v1=…`, see `delivery.signature`) with the
notification's `Idempotency-Key`; a 2xx is delivered, 429/5xx are retried (Retry-After honoured), other 4xx are
permanent. The URL is checked against our own network again at send time (DNS may have changed)."""

from __future__ import annotations

import json
from typing import Any

from marketpulse.delivery import signature
from marketpulse.delivery.channels.base import Context, Delivery, post, raise_for_answer
from marketpulse.delivery.core import DeliveryError
from marketpulse.delivery.ssrf import UnsafeUrl, check_webhook_url
from marketpulse.delivery.templates import card


def signed_headers(secret: str | None, body: bytes, now_ms: int, key: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Idempotency-Key": key, "User-Agent": "marketpulse-webhooks"}
    if secret:
        headers[signature.HEADER] = signature.sign(secret, body, now_ms // 1000)
    return headers


async def post_json(ctx: Context, url: str, payload: dict[str, Any], secret: str | None, now_ms: int,
                    key: str) -> None:
    try:
        await check_webhook_url(url, allow_private=ctx.settings.webhook_allow_private)
    except UnsafeUrl as exc:
        raise DeliveryError(f"webhook URL refused: {exc}", permanent=True) from None
    body = json.dumps(payload, separators=(",", ":")).encode()
    raise_for_answer(await post(ctx, url, content=body, headers=signed_headers(secret, body, now_ms, key)))


class WebhookProvider:
    name = "webhook"

    async def send(self, delivery: Delivery, ctx: Context, now_ms: int) -> None:
        payload = {"type": "notification", "id": delivery.idempotency_key,
                   "created_at_ms": delivery.created_at_ms,
                   **card(delivery.rendered(ctx.settings.public_url))}
        await post_json(ctx, delivery.address, payload, delivery.secret, now_ms, delivery.idempotency_key)
