"""Signed-in users for tests of per-user routes and of live data per plan: a user made through the accounts
service (as `pulse admin create-user` makes one) and a session started for them, so a test needs no accounts router
to get a token; and a browser signed in through the real `POST /api/v1/auth/signin`.

`sign_in_user` and `authorize` default to the pro plan, the limits the paper and backtest tests were written
against (10 concurrent positions, unlimited backtests); `user_on_plan` to elite (every market patch and alert at
once). Tests of a plan's limits name the plan they need.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from marketpulse.accounts.core import Role
from marketpulse.accounts.tables import UserRow
from marketpulse.runtime import Runtime

STRONG = "Correct-Horse-9-battery"  # meets the password rule


@dataclass(frozen=True)
class SignedIn:
    user_id: str
    access_token: str
    session_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def sign_in_user(runtime: Runtime, email: str | None = None, *, plan: str = "pro", role: Role = Role.USER,
                       password: str | None = None) -> SignedIn:
    """A new verified user and a live session of theirs. Without `password` the account has none (hashing one
    costs argon2's time and only the sign-in routes need it)."""
    accounts = runtime.services.accounts
    email = email or f"trader-{uuid.uuid4().hex[:8]}@example.com"
    user = await accounts.create_user(email, password, role=role, plan=plan, verified=True)
    tokens = await accounts.start_session(user)
    return SignedIn(user.id, tokens.access_token, tokens.session_id)


async def authorize(client: httpx.AsyncClient, runtime: Runtime, email: str | None = None, *,
                    plan: str = "pro") -> SignedIn:
    """Sign a new user in and make every later request of `client` carry their Bearer token."""
    who = await sign_in_user(runtime, email, plan=plan)
    client.headers.update(who.headers)
    return who


async def browser_sign_in(page: Any, base_url: str, runtime: Runtime, email: str | None = None, *,
                          plan: str = "pro") -> SignedIn:
    """Make a verified user and sign them in through the real `POST /api/v1/auth/signin` from inside the page's
    browser context, so the browser holds the session's HttpOnly cookies and the readable CSRF cookie exactly
    as after the sign-in page. `page` is a Playwright page."""
    accounts = runtime.services.accounts
    email = email or f"browser-{uuid.uuid4().hex[:8]}@example.com"
    user = await accounts.create_user(email, STRONG, plan=plan, verified=True)
    resp = await page.request.post(base_url + "/api/v1/auth/signin", data={"email": email, "password": STRONG})
    assert resp.ok, await resp.text()
    body = await resp.json()
    cookies = {c["name"] for c in await page.context.cookies()}
    assert {"mp_access", "mp_csrf"} <= cookies, cookies
    return SignedIn(user.id, body["access_token"], "")


async def session_for(runtime: Runtime, user_id: str) -> SignedIn:
    """A fresh session of an existing user: after a test moves the fake clock past the access token's life."""
    accounts = runtime.services.accounts
    user = await accounts.get_user(user_id)
    assert user is not None
    tokens = await accounts.start_session(user)
    return SignedIn(user.id, tokens.access_token, tokens.session_id)


async def user_on_plan(runtime: Runtime, plan: str = "elite", role: Role = Role.USER) -> tuple[UserRow, str]:
    """A new verified user on `plan` (an address of their own) and an access token of a session of theirs."""
    accounts = runtime.services.accounts
    user = await accounts.create_user(f"{plan}-{uuid.uuid4().hex}@example.com", None, plan=plan, role=role,
                                      verified=True)
    return user, (await accounts.start_session(user)).access_token


async def token_on_plan(runtime: Runtime, plan: str = "elite") -> str:
    """An access token of a new user on `plan`."""
    return (await user_on_plan(runtime, plan))[1]
