"""Email over SMTP (aiosmtplib), HTML and text from the templates. The primary relay is the account mail's
(`PULSE_SMTP_*`), the fallback `PULSE_DELIVERY_SMTP_FALLBACK_HOST`/`_PORT`. The Message-ID is derived from the
idempotency key, so a redelivered mail is recognisable as the same message. A recipient the server refuses with a
5xx is permanent; 4xx answers and connection failures are retried."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from marketpulse.delivery.channels.base import Context, Delivery
from marketpulse.delivery.core import DeliveryError
from marketpulse.delivery.templates import email_parts


def build_mail(ctx: Context, to: str, subject: str, text: str, html: str | None, key: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = ctx.settings.mail_from, to, subject
    msg["Message-ID"] = f"<{key}@marketpulse>"
    msg["X-Idempotency-Key"] = key
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


async def smtp_send(ctx: Context, msg: EmailMessage, host: str | None, port: int) -> None:
    s = ctx.settings
    if host is None:
        raise DeliveryError("no SMTP relay configured")
    try:
        await aiosmtplib.send(msg, hostname=host, port=port, start_tls=s.smtp_starttls, username=s.smtp_username,
                              password=s.smtp_password.get_secret_value() if s.smtp_password is not None else None,
                              timeout=s.delivery_timeout_s)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [err.code for err in exc.recipients]
        raise DeliveryError(f"recipient refused: {exc}", permanent=all(c >= 500 for c in codes)) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP {exc.code}: {exc.message}", permanent=exc.code >= 550) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP relay unreachable: {type(exc).__name__}") from None


class EmailProvider:
    def __init__(self, name: str, fallback: bool = False) -> None:
        self.name = name
        self.fallback = fallback

    def relay(self, ctx: Context) -> tuple[str | None, int]:
        s = ctx.settings
        if self.fallback:
            return s.delivery_smtp_fallback_host, s.delivery_smtp_fallback_port
        return s.smtp_host, s.smtp_port

    async def send(self, delivery: Delivery, ctx: Context, now_ms: int) -> None:
        subject, text, html = email_parts(delivery.rendered(ctx.settings.public_url))
        msg = build_mail(ctx, delivery.address, subject, text, html, delivery.idempotency_key)
        await smtp_send(ctx, msg, *self.relay(ctx))
