"""Export and erasure: everything a user owns comes out as one JSON document and goes away on request, other
users' rows untouched; the audit log keeps the fact, not the address."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from marketpulse.accounts.privacy import OWNER_COLUMN, owned_tables
from marketpulse.accounts.service import RECENT_SIGNIN_S
from marketpulse.accounts.tables import AuditRow
from marketpulse.backtest.tables import BacktestJobRow
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.storage.models import metadata
from support.accounts import sign_in_user

from .conftest import STRONG, Sink, bearer, signin, signup_verified
from .test_owners import ETH_WEEK


def test_every_table_that_belongs_to_someone_names_them_owner_id() -> None:
    """Export and erasure find owned rows by `owner_id`: a table keyed by another owner column would be missed."""
    suspicious = [f"{t.name}.{c.name}" for t in metadata.sorted_tables for c in t.columns
                  if c.name.endswith(("owner", "owner_id", "_user", "user_id")) and c.name != OWNER_COLUMN
                  and not t.name.startswith(("auth_", "email_", "api_", "refresh_", "wallets", "totp_", "recovery_",
                                              "external_identities", "passkey"))]
    assert suspicious == []
    assert {"backtest_jobs", "paper_accounts", "paper_orders", "paper_fills"} <= {t.name for t in owned_tables()}


async def test_export_holds_what_the_user_owns_and_no_secret(client: httpx.AsyncClient, sink: Sink,
                                                             runtime: Runtime) -> None:
    await signup_verified(client, sink, "mine@example.com")
    tokens = await signin(client, "mine@example.com")
    session = bearer(tokens)
    job = (await client.post("/api/v1/backtests", json=ETH_WEEK, headers=session)).json()["id"]
    other = await sign_in_user(runtime)
    await client.post("/api/v1/backtests", json=ETH_WEEK, headers=other.headers)  # another user's: not theirs
    key = (await client.post("/api/v1/account/api-keys", json={"name": "bot", "scopes": ["read"]},
                             headers=session)).json()["key"]
    await runtime.services.backtests.wait()

    resp = await client.get("/api/v1/account/export", headers=session)
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["account"]["email"] == "mine@example.com" and "password_hash" not in doc["account"]
    assert [j["id"] for j in doc["owned"]["backtest_jobs"]] == [job]
    assert doc["api_keys"][0]["prefix"] in key and len(doc["sessions"]) == 1
    for secret in (STRONG, key, tokens["access_token"], tokens["refresh_token"], "$argon2id$"):
        assert secret not in resp.text
    assert (await client.get("/api/v1/account/export")).status_code == 401


async def test_erasing_the_account_removes_what_it_owns_and_only_that(client: httpx.AsyncClient, sink: Sink,
                                                                     runtime: Runtime) -> None:
    user_id = await signup_verified(client, sink, "gone@example.com")
    session = bearer(await signin(client, "gone@example.com"))
    await client.post("/api/v1/backtests", json=ETH_WEEK, headers=session)
    other = await sign_in_user(runtime)
    await client.post("/api/v1/backtests", json=ETH_WEEK, headers=other.headers)  # another user's stays
    await runtime.services.backtests.wait()

    wrong = await client.request("DELETE", "/api/v1/account", json={"password": "Not-It-123!"}, headers=session)
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "password"]
    assert "Not-It-123!" not in wrong.text
    ok = await client.request("DELETE", "/api/v1/account", json={"password": STRONG}, headers=session)
    assert ok.status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=session)).status_code == 401
    async with runtime.sessions() as s:
        owners = list((await s.execute(select(BacktestJobRow.owner_id))).scalars())
        [entry] = (await s.execute(select(AuditRow).where(AuditRow.action == "account.erased"))).scalars()
        audited = (await s.execute(select(func.count()).select_from(AuditRow))).scalar_one()
    assert owners == [other.user_id]
    assert entry.target_id == user_id and entry.new_values == {"rows_erased": {
        t.name: (1 if t.name == "backtest_jobs" else 0) for t in owned_tables()}}
    assert "gone@example.com" not in str(entry.new_values) and audited == 1
    assert (await client.post("/api/v1/auth/signin", json={"email": "gone@example.com", "password": STRONG})
            ).status_code == 401


async def test_an_account_without_a_password_is_erased_by_a_fresh_confirmation(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    """A wallet's account has no password to confirm with: `confirm: "DELETE"` from a recent sign-in does."""
    accounts = runtime.services.accounts
    user = await accounts.create_user("wallet@example.com", None, verified=True)  # as a wallet sign-in makes one
    stale = bearer(vars(await accounts.start_session(user)))
    assert runtime.settings.access_token_ttl_s > RECENT_SIGNIN_S  # the stale session's token still works
    clock.advance((RECENT_SIGNIN_S + 1) * 1000)
    for body in ({}, {"password": "Any-Password-1!"}, {"confirm": "delete"}):
        refused = await client.request("DELETE", "/api/v1/account", json=body, headers=stale)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"][:2] == ["body", "confirm"]
    too_old = await client.request("DELETE", "/api/v1/account", json={"confirm": "DELETE"}, headers=stale)
    assert too_old.status_code == 422 and "sign in again" in too_old.text  # a session from 10 minutes ago
    assert await accounts.get_user(user.id) is not None  # nothing erased yet
    fresh = bearer(vars(await accounts.start_session(user)))
    ok = await client.request("DELETE", "/api/v1/account", json={"confirm": "DELETE"}, headers=fresh)
    assert ok.status_code == 204, ok.text
    assert await accounts.get_user(user.id) is None
