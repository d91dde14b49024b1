"""Telegram Bot API `sendMessage` with `parse_mode=HTML`. Errors come as `{"ok": false, "error_code": 400,
"description": "Bad Request: chat not found"}`; a 429 carries `parameters.retry_after` (seconds)."""

from __future__ import annotations

from marketpulse.delivery.channels.base import Context, Delivery, post
from marketpulse.delivery.core import DeliveryError, http_error
from marketpulse.delivery.templates import telegram_text


async def send_text(ctx: Context, chat_id: str, text: str) -> None:
    s = ctx.settings
    if s.telegram_bot_token is None:
        raise DeliveryError("Telegram is not configured (PULSE_TELEGRAM_BOT_TOKEN)")
    url = f"{s.telegram_api_base.rstrip('/')}/bot{s.telegram_bot_token.get_secret_value()}/sendMessage"
    resp = await post(ctx, url, json={"chat_id": chat_id, "text": text, "parse_mode": "HTML",
                                      "disable_web_page_preview": True})
    if resp.is_success:
        return
    try:
        answer = resp.json()
    except ValueError:
        answer = {}
    retry_after = (answer.get("parameters") or {}).get("retry_after") if isinstance(answer, dict) else None
    description = answer.get("description", resp.text) if isinstance(answer, dict) else resp.text
    raise http_error(resp.status_code, str(description), float(retry_after) if retry_after is not None else None)


class TelegramProvider:
    name = "telegram"

    async def send(self, delivery: Delivery, ctx: Context, now_ms: int) -> None:
        await send_text(ctx, delivery.address, telegram_text(delivery.rendered(ctx.settings.public_url)))
