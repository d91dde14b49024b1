"""Signed-in users for tests that are about something else (live data per plan): a user on a plan and a token."""

from __future__ import annotations

import uuid

from marketpulse.accounts.core import Role
from marketpulse.accounts.tables import UserRow
from marketpulse.runtime import Runtime


async def user_on_plan(runtime: Runtime, plan: str = "elite", role: Role = Role.USER) -> tuple[UserRow, str]:
    """A new verified user on `plan` (an address of their own) and an access token of a session of theirs."""
    accounts = runtime.services.accounts
    user = await accounts.create_user(f"{plan}-{uuid.uuid4().hex}@example.com", None, plan=plan, role=role,
                                      verified=True)
    return user, (await accounts.start_session(user)).access_token


async def token_on_plan(runtime: Runtime, plan: str = "elite") -> str:
    """An access token of a new user on `plan`."""
    return (await user_on_plan(runtime, plan))[1]
