"""Slack incoming webhooks with blocks. Slack answers `ok` (200) or a plain-text error code: `invalid_payload`
(400), `action_prohibited` (403), `no_service` (404), `channel_is_archived` (410) are permanent; 429 and 5xx are
retried after `Retry-After`."""

from __future__ import annotations

from marketpulse.delivery.channels.base import Context, Delivery, post, raise_for_answer
from marketpulse.delivery.core import DeliveryError
from marketpulse.delivery.ssrf import UnsafeUrl, check_webhook_url
from marketpulse.delivery.templates import Rendered, slack_payload


async def post_slack(ctx: Context, url: str, rendered: Rendered) -> None:
    try:
        await check_webhook_url(url, allow_private=ctx.settings.webhook_allow_private)
    except UnsafeUrl as exc:
        raise DeliveryError(f"Slack webhook URL refused: {exc}", permanent=True) from None
    raise_for_answer(await post(ctx, url, json=slack_payload(rendered)))


class SlackProvider:
    name = "slack"

    async def send(self, delivery: Delivery, ctx: Context, now_ms: int) -> None:
        await post_slack(ctx, delivery.address, delivery.rendered(ctx.settings.public_url))
