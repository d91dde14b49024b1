"""In-app notifications: published on `notifications.user`; the API's realtime bridge pushes each to the owner's
Socket.IO room `user-{id}` once (by bus message id), and the notification centre lists them from the history."""

from __future__ import annotations

from marketpulse.bus import topics
from marketpulse.delivery.channels.base import Context, Delivery
from marketpulse.delivery.core import DeliveryError


class InAppProvider:
    name = "in_app"

    async def send(self, delivery: Delivery, ctx: Context, now_ms: int) -> None:
        if ctx.bus is None:
            raise DeliveryError("no bus to publish in-app notifications on")
        r = delivery.rendered(ctx.settings.public_url)
        await ctx.bus.publish(topics.NOTIFICATIONS_USER, topics.UserNotification(
            owner_id=delivery.owner_id, id=delivery.notification_id, key=delivery.idempotency_key, title=r.title,
            text=r.text, kind=r.kind, time=delivery.created_at_ms or now_ms, symbol=r.symbol, url=r.url))
