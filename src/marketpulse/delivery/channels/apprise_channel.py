"""Apprise URLs (`tgram://…`, `mailto://…`, `pover://…`: 100+ services) for users whose service isn't built in.
Apprise reports only success or failure, so a failure is retried like a transient one."""

from __future__ import annotations

from marketpulse.delivery.channels.base import Context, Delivery
from marketpulse.delivery.core import DeliveryError
from marketpulse.delivery.templates import plain_text


def check_apprise_url(url: str) -> None:
    import apprise

    if apprise.Apprise.instantiate(url) is None:
        raise ValueError("is not an Apprise URL of a supported service")


async def notify(url: str, title: str, body: str) -> None:
    import apprise

    app = apprise.Apprise()
    if not app.add(url):
        raise DeliveryError("not an Apprise URL of a supported service", permanent=True)
    if not await app.async_notify(body=body, title=title):
        raise DeliveryError("Apprise could not deliver the notification")


class AppriseProvider:
    name = "apprise"

    async def send(self, delivery: Delivery, ctx: Context, now_ms: int) -> None:
        r = delivery.rendered(ctx.settings.public_url)
        await notify(delivery.address, r.title, plain_text(r))
