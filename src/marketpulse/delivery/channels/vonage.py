"""SMS through Vonage's (Nexmo's) SMS API, the fallback SMS provider: `POST {base}/sms/json`, form-encoded with
`api_key`/`api_secret`. It answers 200 with a `messages` list whose `status` is "0" when accepted; "1"
(throttled) and "5" (internal error) are retried, the others (invalid number, credentials, barred…) are
permanent."""

from __future__ import annotations

from marketpulse.delivery.channels.base import Context, post, raise_for_answer
from marketpulse.delivery.core import DeliveryError

RETRYABLE = {"1", "5"}


class VonageProvider:
    name = "vonage"

    @staticmethod
    def configured(ctx: Context) -> bool:
        s = ctx.settings
        return bool(s.vonage_api_key and s.vonage_api_secret and s.vonage_from)

    async def send_text(self, ctx: Context, to: str, text: str) -> None:
        s = ctx.settings
        if not self.configured(ctx) or s.vonage_api_secret is None:
            raise DeliveryError("Vonage is not configured (PULSE_VONAGE_API_KEY, _API_SECRET, _FROM)")
        resp = await post(ctx, f"{s.vonage_api_base.rstrip('/')}/sms/json", data={
            "api_key": s.vonage_api_key, "api_secret": s.vonage_api_secret.get_secret_value(),
            "from": s.vonage_from, "to": to.lstrip("+"), "text": text})
        raise_for_answer(resp)
        try:
            first = resp.json()["messages"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise DeliveryError(f"unreadable Vonage answer: {resp.text[:200]}") from None
        status = str(first.get("status"))
        if status != "0":
            raise DeliveryError(f"Vonage status {status}: {first.get('error-text')}",
                                permanent=status not in RETRYABLE)
