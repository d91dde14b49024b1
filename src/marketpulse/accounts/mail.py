"""Account mail (verification, password-reset and unlock links) over SMTP with aiosmtplib.

Sending never decides an answer: a mail server that is down is logged (without the link, which is a credential)
and the request answers as it would have, so nobody learns from a reply whether an address has an account.
"""

from __future__ import annotations

from email.message import EmailMessage
from urllib.parse import urlencode

import aiosmtplib
import structlog

from marketpulse.settings import Settings

log = structlog.get_logger(__name__)


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def enabled(self) -> bool:
        return self.settings.smtp_host is not None

    def link(self, page: str, token: str) -> str:
        return f"{self.settings.public_url.rstrip('/')}/{page}?{urlencode({'token': token})}"

    async def send(self, to: str, subject: str, body: str, *, kind: str) -> bool:
        """Send one plain-text mail; False (and a warning naming only its kind) when it could not go out."""
        s = self.settings
        if s.smtp_host is None:
            log.info("account mail not sent: PULSE_SMTP_HOST is unset", kind=kind)
            return False
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = s.mail_from, to, subject
        msg.set_content(body)
        try:
            await aiosmtplib.send(
                msg, hostname=s.smtp_host, port=s.smtp_port, start_tls=s.smtp_starttls,
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password is not None else None,
                timeout=10,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning("account mail failed", kind=kind, error=type(exc).__name__)
            return False
        log.info("account mail sent", kind=kind)
        return True

    async def send_verification(self, to: str, token: str, ttl_s: int) -> bool:
        body = (f"Confirm your marketpulse address by opening this link (it works once, for {ttl_s // 3600 or 1} "
                f"hour(s)):\n\n{self.link('verify-email', token)}\n\nIf you did not sign up, ignore this mail.\n")
        return await self.send(to, "Confirm your marketpulse address", body, kind="verify_email")

    async def send_password_reset(self, to: str, token: str, ttl_s: int) -> bool:
        body = (f"Someone asked to reset the password of your marketpulse account. To choose a new one, open this "
                f"link (it works once, for {max(ttl_s // 60, 1)} minutes):\n\n{self.link('reset-password', token)}"
                "\n\nIf it was not you, ignore this mail: your password stays as it is.\n")
        return await self.send(to, "Reset your marketpulse password", body, kind="reset_password")

    async def send_unlock(self, to: str, token: str, ttl_s: int) -> bool:
        body = (f"Your marketpulse account was locked after too many failed sign-ins. If that was you, open this link "
                f"to unlock it (it works once, for {ttl_s // 3600 or 1} hour(s)):\n\n{self.link('unlock', token)}\n\n"
                "If it was not you, someone tried to guess your password: unlock the account and consider changing "
                "the password.\n")
        return await self.send(to, "Your marketpulse account was locked", body, kind="unlock_account")
