"""Discord webhooks (`POST <webhook url>?wait=true`) with one embed. A 429 answers `{"retry_after": 1.5, …}` and
the `X-RateLimit-Reset-After` header; both are honoured (the larger wins)."""

from __future__ import annotations

import contextlib
from typing import Any

from marketpulse.delivery.channels.base import Context, Delivery, post, retry_after_header
from marketpulse.delivery.core import DeliveryError, http_error
from marketpulse.delivery.ssrf import UnsafeUrl, check_webhook_url
from marketpulse.delivery.templates import discord_payload


def _rate_limit_wait(resp: Any) -> float | None:
    waits: list[float] = []
    if (header := retry_after_header(resp)) is not None:
        waits.append(header)
    with contextlib.suppress(TypeError, ValueError):
        waits.append(float(resp.headers.get("X-RateLimit-Reset-After")))
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        waits.append(float(resp.json().get("retry_after")))
    return max(waits) if waits else None


async def post_discord(ctx: Context, url: str, payload: dict[str, Any]) -> None:
    try:
        await check_webhook_url(url, allow_private=ctx.settings.webhook_allow_private)
    except UnsafeUrl as exc:
        raise DeliveryError(f"Discord webhook URL refused: {exc}", permanent=True) from None
    resp = await post(ctx, url, params={"wait": "true"}, json=payload)
    if not resp.is_success:
        raise http_error(resp.status_code, resp.text, _rate_limit_wait(resp) if resp.status_code == 429 else None)


class DiscordProvider:
    name = "discord"

    async def send(self, delivery: Delivery, ctx: Context, now_ms: int) -> None:
        rendered = delivery.rendered(ctx.settings.public_url)
        await post_discord(ctx, delivery.address, discord_payload(rendered, delivery.created_at_ms or None))
