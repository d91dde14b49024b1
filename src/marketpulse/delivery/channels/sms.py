"""The SMS channel's providers: Twilio first, Vonage as the fallback when configured (seed 001)."""

from __future__ import annotations

from marketpulse.delivery.channels.base import Context, Delivery
from marketpulse.delivery.channels.twilio import TwilioProvider
from marketpulse.delivery.channels.vonage import VonageProvider
from marketpulse.delivery.templates import sms_text


class SmsVia:
    def __init__(self, provider: TwilioProvider | VonageProvider) -> None:
        self.provider = provider
        self.name = provider.name

    async def send(self, delivery: Delivery, ctx: Context, now_ms: int) -> None:
        await self.provider.send_text(ctx, delivery.address, sms_text(delivery.rendered(ctx.settings.public_url)))
