"""What `pulse demo` adds for delivery: its local Telegram and webhook receivers (`devreceivers.py`, shown at
/dev/receivers), Telegram pointed at them (unless a real bot token is configured), and the seeded admin on the elite
plan (instant delivery, every channel but the enterprise ones) with a verified Telegram chat and a signed webhook
destination there, so a rule made in the dashboard is delivered on both at once."""

from __future__ import annotations

import secrets
import uuid

import structlog
from pydantic import SecretStr
from sqlalchemy import select

from marketpulse.accounts.tables import UserRow
from marketpulse.delivery.devreceivers import DevReceivers
from marketpulse.delivery.tables import DestinationRow
from marketpulse.runtime import Runtime

log = structlog.get_logger(__name__)

DEMO_CHAT_ID = "100200300"  # the admin's Telegram chat at the local Bot API
DEMO_HOOK = "demo"  # the admin's webhook: /hooks/demo at the receivers
DEMO_PLAN = "elite"


async def start_demo_receivers(runtime: Runtime, owner_id: str) -> DevReceivers:
    """Start the receivers and point the admin's destinations at them (once per database; a restart moves the
    webhook to the receivers' new port)."""
    settings, delivery, accounts = runtime.settings, runtime.services.delivery, runtime.services.accounts
    receivers = DevReceivers(bot_token=f"{secrets.randbelow(10**9)}:demo{secrets.token_hex(12)}", clock=runtime.clock)
    await receivers.start()
    previous, delivery.dev_receivers = delivery.dev_receivers, receivers
    if previous is not None:
        await previous.stop()
    ours_before = previous is not None and settings.telegram_api_base == previous.base_url
    if settings.telegram_bot_token is None or ours_before:
        settings.telegram_api_base = receivers.base_url
        settings.telegram_bot_token = SecretStr(receivers.bot_token)
    now = runtime.clock.now_ms()
    async with runtime.sessions.begin() as s:
        user = await s.get(UserRow, owner_id)
        assert user is not None
        changed = accounts.change_user(s, user, {"plan": DEMO_PLAN}, action="demo.plan_set", actor_id=None,
                                       note={"reason": "pulse demo delivers on Telegram and webhooks at once"})
        mine = (await s.execute(select(DestinationRow).where(DestinationRow.owner_id == owner_id))).scalars().all()
        telegram = next((d for d in mine if d.channel == "telegram" and d.address == DEMO_CHAT_ID), None)
        if telegram is None:
            s.add(DestinationRow(id=str(uuid.uuid4()), owner_id=owner_id, channel="telegram", address=DEMO_CHAT_ID,
                                 state="verified", code_attempts=0, created_at_ms=now, verified_at_ms=now))
        hook = next((d for d in mine if d.channel == "webhook" and d.address.endswith(f"/hooks/{DEMO_HOOK}")
                     and d.address.startswith(f"http://{receivers.host}:")), None)
        if hook is None:
            hook = DestinationRow(id=str(uuid.uuid4()), owner_id=owner_id, channel="webhook", state="verified",
                                  address=receivers.hook_url(DEMO_HOOK), code_attempts=0, created_at_ms=now,
                                  verified_at_ms=now, signing_secret=f"whsec_{secrets.token_urlsafe(24)}")
            s.add(hook)
        hook.address = receivers.hook_url(DEMO_HOOK)
        receivers.secrets[DEMO_HOOK] = hook.signing_secret or ""
    if changed:
        await accounts.announce_user_change(user, changed)
    log.info("demo Telegram and webhook receivers started", url=receivers.base_url)
    return receivers
