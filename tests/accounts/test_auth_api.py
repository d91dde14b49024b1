"""Email and password sign-in over HTTP, on SQLite and PostgreSQL, with mail through a real SMTP sink and token
expiry judged by the injected clock."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from structlog.testing import capture_logs

from marketpulse.accounts.tables import EmailTokenRow, UserRow
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime

from .conftest import STRONG, Sink, bearer, signin, signup_verified

NEW = "Another-Strong-7-phrase"


def field_errors(resp: httpx.Response) -> dict[str, str]:
    assert resp.status_code == 422, resp.text
    return {".".join(str(p) for p in e["loc"][1:]): e["msg"] for e in resp.json()["detail"]}


async def test_signup_mails_a_link_that_verifies_once_then_signin_and_me(
    client: httpx.AsyncClient, sink: Sink, runtime: Runtime
) -> None:
    resp = await client.post("/api/v1/auth/signup", json={"email": "Ada@Example.com", "password": STRONG})
    assert resp.status_code == 201, resp.text
    user = resp.json()
    assert (user["email"], user["plan"], user["role"], user["status"]) == ("Ada@example.com", "free", "user", "active")
    assert user["email_verified"] is False and user["wallets"] == []

    early = await client.post("/api/v1/auth/signin", json={"email": "ada@example.com", "password": STRONG})
    assert early.status_code == 403 and early.json()["detail"]["reason"] == "email_not_verified"

    token = sink.token("Ada@example.com")  # the domain is lower-cased, the local part kept
    verified = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert verified.status_code == 200 and verified.json()["email_verified"] is True
    again = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert "token" in field_errors(again)  # single use
    async with runtime.sessions() as s:  # stored as a hash only
        stored = list((await s.execute(select(EmailTokenRow.token_hash))).scalars())
    assert stored and token not in stored

    resp = await client.post("/api/v1/auth/signin", json={"email": "ADA@example.COM", "password": STRONG})
    assert resp.status_code == 200, resp.text
    pair = resp.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "bearer" and pair["expires_in"] == runtime.settings.access_token_ttl_s
    cookies = resp.headers.get_list("set-cookie")
    access_cookie = next(c for c in cookies if c.startswith("mp_access="))
    assert "HttpOnly" in access_cookie and "SameSite=lax" in access_cookie and "Secure" not in access_cookie
    assert any(c.startswith("mp_refresh=") and "HttpOnly" in c and "SameSite=strict" in c for c in cookies)

    me = await client.get("/api/v1/auth/me")  # the cookie
    assert me.status_code == 200 and me.json()["id"] == user["id"]
    client.cookies.clear()
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    me = await client.get("/api/v1/auth/me", headers=bearer(pair))
    assert me.status_code == 200
    assert {k: me.json()[k] for k in ("id", "email", "plan", "role", "status")} == {
        "id": user["id"], "email": "Ada@example.com", "plan": "free", "role": "user", "status": "active"}


async def test_emails_are_unique_whatever_their_case(client: httpx.AsyncClient, sink: Sink) -> None:
    await signup_verified(client, sink, "bob@example.com")
    dup = await client.post("/api/v1/auth/signup", json={"email": "BOB@Example.COM", "password": STRONG})
    assert dup.status_code == 409 and dup.json()["detail"][0]["loc"] == ["body", "email"]
    assert len(sink.mails) == 1


@pytest.mark.parametrize(("password", "needs"), [
    ("Short-1a", "at least 12 characters"),
    ("no-upper-case-9", "an upper-case letter"),
    ("No-Digits-Here!", "a digit"),
    ("NoSpecials12345", "a special character"),
])
async def test_a_weak_password_is_a_422_naming_the_field_never_echoing_it(
    client: httpx.AsyncClient, runtime: Runtime, password: str, needs: str
) -> None:
    resp = await client.post("/api/v1/auth/signup", json={"email": "c@example.com", "password": password})
    assert needs in field_errors(resp)["password"]
    assert password not in resp.text
    async with runtime.sessions() as s:
        assert (await s.execute(select(UserRow))).first() is None


async def test_passwords_are_stored_as_argon2id(client: httpx.AsyncClient, sink: Sink, runtime: Runtime,
                                                clock: FakeClock) -> None:
    await signup_verified(client, sink, "d@example.com")
    async with runtime.sessions() as s:
        row = (await s.execute(select(UserRow))).scalar_one()
    assert row.password_hash is not None and row.password_hash.startswith("$argon2id$")
    assert STRONG not in row.password_hash
    wrong = await client.post("/api/v1/auth/signin", json={"email": "d@example.com", "password": STRONG + "x"})
    clock.advance(1000)  # this client's one failure delays its next attempt by a second
    unknown = await client.post("/api/v1/auth/signin", json={"email": "nobody@example.com", "password": STRONG})
    assert wrong.status_code == unknown.status_code == 401 and wrong.json() == unknown.json()


async def test_access_tokens_expire_by_the_clock(client: httpx.AsyncClient, sink: Sink, clock: FakeClock,
                                                 runtime: Runtime) -> None:
    await signup_verified(client, sink, "e@example.com")
    tokens = await signin(client, "e@example.com")
    clock.advance(runtime.settings.access_token_ttl_s * 1000 - 1)
    assert (await client.get("/api/v1/auth/me", headers=bearer(tokens))).status_code == 200
    clock.advance(1)
    expired = await client.get("/api/v1/auth/me", headers=bearer(tokens))
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    assert expired.headers["www-authenticate"] == "Bearer"

    fresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert fresh.status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=bearer(fresh.json()))).status_code == 200


async def test_refresh_rotates_and_a_reused_token_ends_its_whole_family(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    await signup_verified(client, sink, "f@example.com")
    first = await signin(client, "f@example.com")
    other_device = await signin(client, "f@example.com")
    second = (await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
    assert second["refresh_token"] != first["refresh_token"]
    third = (await client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})).json()

    reuse = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401 and "already used" in reuse.json()["detail"]
    # The thief's and the owner's latest tokens of that family stop working alike…
    assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": third["refresh_token"]})
            ).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=bearer(third))).status_code == 401
    # …while the user's other session is untouched.
    assert (await client.get("/api/v1/auth/me", headers=bearer(other_device))).status_code == 200
    assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": "made-up"})).status_code == 401


async def test_refresh_and_posts_by_cookie_need_the_csrf_header(client: httpx.AsyncClient, sink: Sink) -> None:
    await signup_verified(client, sink, "g@example.com")
    resp = await client.post("/api/v1/auth/signin", json={"email": "g@example.com", "password": STRONG})
    csrf = resp.cookies["mp_csrf"]
    client.cookies.set("mp_refresh", resp.cookies["mp_refresh"])  # httpx keeps the path-scoped cookie apart
    forged = await client.post("/api/v1/auth/refresh")
    assert forged.status_code == 403 and forged.json()["detail"]["reason"] == "csrf"
    ok = await client.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200, ok.text
    csrf = ok.cookies["mp_csrf"]
    assert (await client.post("/api/v1/auth/signout")).status_code == 403
    assert (await client.get("/api/v1/auth/me")).status_code == 200  # reads need no CSRF token
    assert (await client.post("/api/v1/auth/signout", headers={"X-CSRF-Token": csrf})).status_code == 204
    client.cookies.clear()
    assert (await client.get("/api/v1/auth/me", headers=bearer(ok.json()))).status_code == 401


async def test_signout_ends_the_session_and_its_refresh_token(client: httpx.AsyncClient, sink: Sink) -> None:
    await signup_verified(client, sink, "h@example.com")
    tokens = await signin(client, "h@example.com")
    assert (await client.post("/api/v1/auth/signout", headers=bearer(tokens))).status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=bearer(tokens))).status_code == 401
    assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
            ).status_code == 401


async def test_changing_the_password_ends_the_other_sessions(client: httpx.AsyncClient, sink: Sink,
                                                             clock: FakeClock) -> None:
    await signup_verified(client, sink, "i@example.com")
    here, elsewhere = await signin(client, "i@example.com"), await signin(client, "i@example.com")
    wrong = await client.post("/api/v1/auth/change-password", headers=bearer(here),
                              json={"current_password": "Not-The-Password-1", "new_password": NEW})
    assert "current_password" in field_errors(wrong)
    weak = await client.post("/api/v1/auth/change-password", headers=bearer(here),
                             json={"current_password": STRONG, "new_password": "weak"})
    assert "new_password" in field_errors(weak) and STRONG not in weak.text

    ok = await client.post("/api/v1/auth/change-password", headers=bearer(here),
                           json={"current_password": STRONG, "new_password": NEW})
    assert ok.status_code == 200, ok.text
    assert (await client.get("/api/v1/auth/me", headers=bearer(here))).status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=bearer(elsewhere))).status_code == 401
    assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": elsewhere["refresh_token"]})
            ).status_code == 401
    old = await client.post("/api/v1/auth/signin", json={"email": "i@example.com", "password": STRONG})
    assert old.status_code == 401
    clock.advance(1000)
    await signin(client, "i@example.com", NEW)


async def test_password_reset_answers_alike_for_unknown_addresses_and_ends_every_session(
    client: httpx.AsyncClient, sink: Sink, clock: FakeClock, runtime: Runtime
) -> None:
    await signup_verified(client, sink, "j@example.com")
    session = await signin(client, "j@example.com")
    known = await client.post("/api/v1/auth/request-password-reset", json={"email": "J@example.com"})
    unknown = await client.post("/api/v1/auth/request-password-reset", json={"email": "ghost@example.com"})
    assert known.status_code == unknown.status_code == 202 and known.json() == unknown.json()
    assert sink.to("ghost@example.com") == [] and len(sink.to("j@example.com")) == 2  # verification + reset

    token = sink.token("j@example.com")
    bad = await client.post("/api/v1/auth/reset-password", json={"token": token + "x", "new_password": NEW})
    assert "token" in field_errors(bad) and token not in bad.text
    ok = await client.post("/api/v1/auth/reset-password", json={"token": token, "new_password": NEW})
    assert ok.status_code == 200, ok.text
    assert (await client.get("/api/v1/auth/me", headers=bearer(session))).status_code == 401
    reused = await client.post("/api/v1/auth/reset-password", json={"token": token, "new_password": STRONG})
    assert "token" in field_errors(reused)
    await signin(client, "j@example.com", NEW)

    await client.post("/api/v1/auth/request-password-reset", json={"email": "j@example.com"})
    clock.advance(runtime.settings.password_reset_ttl_s * 1000)
    late = await client.post("/api/v1/auth/reset-password",
                             json={"token": sink.token("j@example.com"), "new_password": STRONG})
    assert "token" in field_errors(late)


async def test_a_verification_link_expires_and_a_new_one_replaces_it(
    client: httpx.AsyncClient, sink: Sink, clock: FakeClock, runtime: Runtime
) -> None:
    await client.post("/api/v1/auth/signup", json={"email": "k@example.com", "password": STRONG})
    first = sink.token("k@example.com")
    clock.advance(runtime.settings.verify_email_ttl_s * 1000)
    assert "token" in field_errors(await client.post("/api/v1/auth/verify-email", json={"token": first}))

    assert (await client.post("/api/v1/auth/resend-verification", json={"email": "k@example.com"})
            ).status_code == 202
    second = sink.token("k@example.com")
    assert second != first
    assert (await client.post("/api/v1/auth/verify-email", json={"token": second})).status_code == 200
    # Verified: asking again mails nothing, and answers the same.
    again = await client.post("/api/v1/auth/resend-verification", json={"email": "k@example.com"})
    assert again.status_code == 202 and len(sink.to("k@example.com")) == 2


async def test_mail_requests_are_rate_limited_per_address_known_or_not(app: FastAPI, sink: Sink) -> None:
    for n, email in enumerate(("l@example.com", "ghost@example.com")):  # the limit is 3/hour in these tests
        for port, path in enumerate(("resend-verification", "request-password-reset", "resend-verification")):
            async with from_address(app, f"10.0.{n}.{port}") as client:  # a new address each time
                assert (await client.post(f"/api/v1/auth/{path}", json={"email": email})).status_code == 202
        async with from_address(app, f"10.0.{n}.9") as client:
            limited = await client.post("/api/v1/auth/request-password-reset", json={"email": email})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0


def from_address(app: FastAPI, host: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 40000)), base_url="http://test")


async def test_the_client_address_is_limited_across_addresses(client: httpx.AsyncClient) -> None:
    codes = [(await client.post("/api/v1/auth/request-password-reset", json={"email": f"m{i}@example.com"})
              ).status_code for i in range(4)]
    assert codes == [202, 202, 202, 429]


async def test_a_suspended_user_is_locked_out_at_once(client: httpx.AsyncClient, sink: Sink,
                                                      runtime: Runtime) -> None:
    user_id = await signup_verified(client, sink, "n@example.com")
    tokens = await signin(client, "n@example.com")
    async with runtime.sessions() as s:
        row = await s.get(UserRow, user_id)
        assert row is not None
        row.status = "suspended"
        await s.commit()
    me = await client.get("/api/v1/auth/me", headers=bearer(tokens))
    assert me.status_code == 403 and me.json()["detail"]["reason"] == "account_suspended"
    resp = await client.post("/api/v1/auth/signin", json={"email": "n@example.com", "password": STRONG})
    assert resp.status_code == 403
    assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
            ).status_code == 403


async def test_secrets_never_reach_the_log(client: httpx.AsyncClient, sink: Sink) -> None:
    with capture_logs() as logs:
        await signup_verified(client, sink, "o@example.com")
        tokens = await signin(client, "o@example.com")
        await client.post("/api/v1/auth/signin", json={"email": "o@example.com", "password": NEW})
        await client.post("/api/v1/auth/request-password-reset", json={"email": "o@example.com"})
        await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    text = repr(logs)
    secrets = [STRONG, NEW, tokens["access_token"], tokens["refresh_token"], sink.token("o@example.com")]
    assert not [s for s in secrets if s in text]
    assert any(e["event"] == "security: sign-in failed" for e in logs)


async def test_mail_that_cannot_be_sent_changes_no_answer(client: httpx.AsyncClient, runtime: Runtime) -> None:
    runtime.settings.smtp_port = 1  # nothing listens there
    resp = await client.post("/api/v1/auth/signup", json={"email": "p@example.com", "password": STRONG})
    assert resp.status_code == 201
    assert (await client.post("/api/v1/auth/resend-verification", json={"email": "p@example.com"})).status_code == 202


async def test_token_lifetimes_follow_the_settings(client: httpx.AsyncClient, sink: Sink, clock: FakeClock,
                                                   runtime: Runtime) -> None:
    runtime.settings.access_token_ttl_s, runtime.settings.refresh_token_ttl_s = 60, 600
    await signup_verified(client, sink, "r@example.com")
    tokens = await signin(client, "r@example.com")
    assert tokens["expires_in"] == 60
    clock.advance(60_000)
    assert (await client.get("/api/v1/auth/me", headers=bearer(tokens))).status_code == 401
    clock.advance(540_000)  # the session's refresh window has passed too
    late = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert late.status_code == 401


@pytest.mark.redis
async def test_processes_sharing_redis_share_the_mail_limit(
    runtime: Runtime, redis_url: str, redis_deployment: str
) -> None:
    from marketpulse.accounts.service import AccountsService, RateLimited

    runtime.settings.rate_limit_storage = redis_url
    runtime.settings.deployment = redis_deployment  # this run's own counts: not another checkout's
    api_1 = AccountsService(runtime.sessions, runtime.clock, runtime.settings)
    api_2 = AccountsService(runtime.sessions, runtime.clock, runtime.settings)
    for api in (api_1, api_2, api_1):  # 3/hour between them
        await api.request_password_reset("s@example.com", "10.1.1.1")
    with pytest.raises(RateLimited):
        await api_2.request_password_reset("s@example.com", "10.1.1.2")


async def test_failed_sign_ins_lock_the_account_even_for_the_right_password(
    app: FastAPI, sink: Sink, runtime: Runtime, clock: FakeClock
) -> None:
    runtime.settings.signin_failure_limit = "3/15minutes"
    async with from_address(app, "10.9.0.1") as client:
        await signup_verified(client, sink, "target@example.com")
    for n in range(3):  # a guesser spreading over addresses is still counted per account
        async with from_address(app, f"10.9.1.{n}") as client:
            resp = await client.post("/api/v1/auth/signin", json={"email": "target@example.com", "password": NEW})
            assert resp.status_code == 401
        clock.advance(2 ** n * 1000)  # the delay each failure sets (1, 2, 4 s) has passed
    async with from_address(app, "10.9.0.1") as client:
        with capture_logs() as logs:
            locked = await client.post("/api/v1/auth/signin",
                                       json={"email": "TARGET@example.com", "password": STRONG})
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        assert [e["by"] for e in logs if e["event"] == "security: sign-in locked"] == ["account"]
        assert STRONG not in repr(logs)
        await signup_verified(client, sink, "bystander@example.com")
        await signin(client, "bystander@example.com")  # other accounts are not locked


async def test_failed_sign_ins_lock_the_client_across_accounts(app: FastAPI, sink: Sink, runtime: Runtime,
                                                               clock: FakeClock) -> None:
    runtime.settings.signin_client_failure_limit = "3/15minutes"
    async with from_address(app, "10.8.0.1") as client:
        await signup_verified(client, sink, "victim@example.com")
    async with from_address(app, "10.8.0.66") as sprayer:
        for n in range(3):
            resp = await sprayer.post("/api/v1/auth/signin", json={"email": f"u{n}@example.com", "password": NEW})
            assert resp.status_code == 401
            clock.advance(2 ** n * 1000)
        resp = await sprayer.post("/api/v1/auth/signin", json={"email": "victim@example.com", "password": STRONG})
        assert resp.status_code == 429
    async with from_address(app, "10.8.0.1") as client:
        await signin(client, "victim@example.com")  # the victim, elsewhere, is not locked out
