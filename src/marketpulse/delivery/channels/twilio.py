"""SMS through Twilio's Messages API: `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`, form-encoded, HTTP
basic auth (account SID, auth token). Errors are JSON `{"code": 21211, "message": …, "status": 400}`: 4xx are
permanent (21211 invalid number, 21610 unsubscribed), 429 (code 20429) and 5xx are retried."""

from __future__ import annotations

from marketpulse.delivery.channels.base import Context, post
from marketpulse.delivery.core import DeliveryError, http_error


class TwilioProvider:
    name = "twilio"

    @staticmethod
    def configured(ctx: Context) -> bool:
        s = ctx.settings
        return bool(s.twilio_account_sid and s.twilio_auth_token and s.twilio_from)

    async def send_text(self, ctx: Context, to: str, text: str) -> None:
        s = ctx.settings
        if not self.configured(ctx) or s.twilio_auth_token is None:
            raise DeliveryError("Twilio is not configured (PULSE_TWILIO_ACCOUNT_SID, _AUTH_TOKEN, _FROM)")
        url = f"{s.twilio_api_base.rstrip('/')}/2010-04-01/Accounts/{s.twilio_account_sid}/Messages.json"
        resp = await post(ctx, url, data={"To": to, "From": s.twilio_from, "Body": text},
                          auth=(str(s.twilio_account_sid), s.twilio_auth_token.get_secret_value()))
        if resp.is_success:
            return
        try:
            answer = resp.json()
            detail = f"{answer.get('code')}: {answer.get('message')}"
        except (ValueError, AttributeError):
            detail = resp.text
        raise http_error(resp.status_code, detail, None)
