"""What `pulse demo` adds for accounts: the local mailbox behind /dev/mail, and a seeded administrator whose
sign-in it prints (a fresh password each start, so nothing guessable outlives the process's output)."""

from __future__ import annotations

import asyncio
import secrets

import structlog

from marketpulse.accounts.core import Role
from marketpulse.accounts.devmail import DevMailbox
from marketpulse.accounts.service import AccountsService

log = structlog.get_logger(__name__)

DEMO_ADMIN = "admin@example.com"


async def start_demo_accounts(accounts: AccountsService, host: str, port: int) -> str:
    """Start the mailbox (unless a real SMTP server is configured) and seed the admin; the admin's password."""
    settings = accounts.settings
    if settings.smtp_host is None:
        mailbox = DevMailbox()
        await asyncio.to_thread(mailbox.start)
        accounts.dev_mailbox = mailbox
        settings.smtp_host, settings.smtp_port = mailbox.host, mailbox.port
    if settings.public_url == type(settings).model_fields["public_url"].default:
        settings.public_url = f"http://{host}:{port}"  # mailed links lead back to this demo
    password = demo_password()
    user = await accounts.find_user(DEMO_ADMIN)
    if user is None:
        await accounts.create_user(DEMO_ADMIN, password, role=Role.ADMIN, verified=True)
    else:
        await accounts.set_password(user.id, password)
    log.info("demo admin ready", email=DEMO_ADMIN)
    return password


def demo_password() -> str:
    """Random, and always within the password rule (upper-case, digit, special character, 12+ characters)."""
    return f"Demo-{secrets.token_hex(6)}-A1!"
