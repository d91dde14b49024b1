"""Sign-in with Google through OpenID Connect, against a local fake provider that speaks the real protocol
(discovery, JWKS, authorization redirect, token endpoint checking PKCE, RS256 id_tokens): new users, returning
users, linking by verified address, the second factor, and every refusal (a clear 4xx, no user created)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, update

from fakes.oidc_provider import FakeAccount, FakeOidcProvider
from marketpulse.accounts.tables import ExternalIdentityRow, UserRow
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings

from .conftest import STRONG, Sink, bearer, signin, signup_verified

CLIENT_ID = "marketpulse-test.apps.googleusercontent.com"
CLIENT_SECRET = "test-google-client-secret"
CALLBACK = "/api/v1/auth/google/callback"


@pytest.fixture
async def idp(clock: FakeClock) -> AsyncIterator[FakeOidcProvider]:
    async with FakeOidcProvider.start(clock, client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as provider:
        yield provider


@pytest.fixture
def settings(settings: Settings, idp: FakeOidcProvider) -> Settings:
    return settings.model_copy(update={"google_client_id": CLIENT_ID, "google_client_secret": SecretStr(CLIENT_SECRET),
                                       "google_discovery_url": idp.discovery_url, "public_url": "http://test"})


async def at_provider(client: httpx.AsyncClient, next_path: str | None = None) -> httpx.URL:
    """Start at /google/start and let the fake provider send the browser back: the callback URL it names."""
    start = await client.get("/api/v1/auth/google/start", params={"next": next_path} if next_path else None)
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(start.headers["location"])
    assert answer.status_code == 302, answer.text
    back = httpx.URL(answer.headers["location"])
    assert (back.scheme, back.host, back.path) == ("http", "test", CALLBACK)
    return back


async def google_signin(client: httpx.AsyncClient, next_path: str | None = None) -> httpx.Response:
    back = await at_provider(client, next_path)
    return await client.get(CALLBACK, params=dict(back.params))


async def count_users(runtime: Runtime) -> int:
    async with runtime.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(UserRow))).scalar_one())


async def me_by_cookie(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await client.get("/api/v1/auth/me")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_google_sign_in_creates_a_verified_free_user(client: httpx.AsyncClient, idp: FakeOidcProvider,
                                                           runtime: Runtime) -> None:
    start = await client.get("/api/v1/auth/google/start", params={"next": "/dashboard"})
    assert start.status_code == 302
    url = urlsplit(start.headers["location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{idp.issuer}/authorize"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["client_id"] == CLIENT_ID and query["response_type"] == "code"
    assert query["redirect_uri"] == f"http://test{CALLBACK}"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert {"openid", "email"} <= set(query["scope"].split())
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    assert start.cookies.get("mp_oidc_state") == query["state"]  # bound to this browser too

    idp.user = FakeAccount(sub="google-sub-1", email="New.Person@gmail.com")
    done = await google_signin(client)
    assert done.status_code == 302, done.text
    assert done.headers["location"] == "/onboarding"  # a new account goes through onboarding
    assert {"mp_access", "mp_refresh", "mp_csrf"} <= set(done.cookies.keys())
    me = await me_by_cookie(client)
    assert (me["email"], me["plan"], me["email_verified"]) == ("New.Person@gmail.com", "free", True)
    # The token request carried the PKCE verifier and the client's secret (the fake checked both).
    assert idp.token_requests[-1]["code_verifier"]
    async with runtime.sessions() as s:
        identity = (await s.execute(select(ExternalIdentityRow))).scalar_one()
    assert (identity.provider, identity.subject, identity.user_id) == ("google", "google-sub-1", me["id"])


async def test_a_returning_user_is_found_by_sub_and_lands_on_next(client: httpx.AsyncClient,
                                                                   idp: FakeOidcProvider, runtime: Runtime) -> None:
    idp.user = FakeAccount(sub="google-sub-2", email="ret@gmail.com")
    assert (await google_signin(client)).status_code == 302
    first = await me_by_cookie(client)
    client.cookies.clear()
    idp.user = FakeAccount(sub="google-sub-2", email="renamed@gmail.com")  # the address changed at Google
    again = await google_signin(client, "/paper?tab=orders")
    assert again.status_code == 302 and again.headers["location"] == "/paper?tab=orders"
    assert (await me_by_cookie(client))["id"] == first["id"]
    assert await count_users(runtime) == 1


async def test_a_verified_password_account_is_linked_by_its_address(client: httpx.AsyncClient, sink: Sink,
                                                                     idp: FakeOidcProvider,
                                                                     runtime: Runtime) -> None:
    user_id = await signup_verified(client, sink, "both@example.com")
    idp.user = FakeAccount(sub="google-sub-3", email="BOTH@example.com")
    done = await google_signin(client)
    assert done.status_code == 302 and done.headers["location"] == "/"
    assert (await me_by_cookie(client))["id"] == user_id
    client.cookies.clear()
    await signin(client, "both@example.com")  # the password still works
    assert await count_users(runtime) == 1


async def test_an_unverified_sign_up_loses_its_unproven_password_when_google_links(
        client: httpx.AsyncClient, idp: FakeOidcProvider) -> None:
    # Someone signed up with this address without proving it; the address's owner then signs in with Google.
    signup = await client.post("/api/v1/auth/signup", json={"email": "victim@gmail.com", "password": STRONG})
    assert signup.status_code == 201
    idp.user = FakeAccount(sub="google-sub-4", email="victim@gmail.com")
    assert (await google_signin(client)).status_code == 302
    assert (await me_by_cookie(client))["id"] == signup.json()["id"]
    client.cookies.clear()
    squatter = await client.post("/api/v1/auth/signin", json={"email": "victim@gmail.com", "password": STRONG})
    assert squatter.status_code == 401


@pytest.mark.parametrize(("spoil", "field"), [
    ({"claims": {"aud": "someone-else.apps.googleusercontent.com"}}, "aud"),
    ({"claims": {"iss": "https://evil.example"}}, "iss"),
    ({"claims": {"nonce": "not-the-nonce-we-sent"}}, "nonce"),
    ({"forge": True}, "signature"),
    ({"user": FakeAccount(sub="google-sub-5", email="unverified@gmail.com", email_verified=False)}, "verified"),
])
async def test_a_spoiled_id_token_is_refused_and_creates_no_user(client: httpx.AsyncClient, idp: FakeOidcProvider,
                                                                  runtime: Runtime, spoil: dict[str, Any],
                                                                  field: str) -> None:
    for name, value in spoil.items():
        setattr(idp, name, value)
    resp = await google_signin(client)
    assert resp.status_code == 401, resp.text
    assert resp.json()["detail"]["reason"] == "google_id_token"
    assert field in resp.json()["detail"]["message"]
    assert "mp_access" not in resp.cookies
    assert await count_users(runtime) == 0


async def test_an_expired_id_token_is_judged_by_the_injected_clock(client: httpx.AsyncClient, idp: FakeOidcProvider,
                                                                    runtime: Runtime, clock: FakeClock) -> None:
    now_s = clock.now_ms() // 1000
    idp.claims = {"iat": now_s - 7200, "exp": now_s - 120}  # past the 60 s leeway
    resp = await google_signin(client)
    assert resp.status_code == 401 and "exp" in resp.json()["detail"]["message"], resp.text
    assert await count_users(runtime) == 0
    idp.claims = {"iat": now_s - 3600, "exp": now_s - 30}  # within the leeway: accepted
    assert (await google_signin(client)).status_code == 302


async def test_a_replayed_or_foreign_callback_is_refused(client: httpx.AsyncClient, idp: FakeOidcProvider,
                                                          runtime: Runtime) -> None:
    back = await at_provider(client)
    assert (await client.get(CALLBACK, params=dict(back.params))).status_code == 302
    replay = await client.get(CALLBACK, params=dict(back.params))
    assert replay.status_code == 400 and replay.json()["detail"]["reason"] == "google_state", replay.text

    # A callback started in another browser (an attacker's code, to sign the victim in as the attacker).
    idp.user = FakeAccount(sub="google-sub-6", email="attacker@gmail.com")
    back = await at_provider(client)
    client.cookies.clear()
    foreign = await client.get(CALLBACK, params=dict(back.params))
    assert foreign.status_code == 400 and foreign.json()["detail"]["reason"] == "google_state"
    client.cookies.set("mp_oidc_state", "made-up")
    forged = await client.get(CALLBACK, params={"code": "x", "state": "made-up"})
    assert forged.status_code == 400
    assert await count_users(runtime) == 1


async def test_provider_errors_and_refused_codes_are_4xx(client: httpx.AsyncClient, idp: FakeOidcProvider,
                                                         runtime: Runtime) -> None:
    denied = await client.get(CALLBACK, params={"error": "access_denied", "state": "s"})
    assert denied.status_code == 400 and "access_denied" in denied.json()["detail"]["message"]
    missing = await client.get(CALLBACK)
    assert missing.status_code == 400
    idp.token_error = "invalid_grant"
    refused = await google_signin(client)
    assert refused.status_code == 401 and "invalid_grant" in refused.json()["detail"]["message"]
    assert await count_users(runtime) == 0


async def test_next_must_be_a_path_on_this_site(client: httpx.AsyncClient) -> None:
    for bad in ("//evil.example/x", "https://evil.example", "/\\evil.example", "javascript:alert(1)"):
        resp = await client.get("/api/v1/auth/google/start", params={"next": bad})
        assert resp.status_code == 422, bad
        assert resp.json()["detail"][0]["loc"] == ["query", "next"]


async def test_start_answers_404_when_google_is_not_configured(client: httpx.AsyncClient, runtime: Runtime) -> None:
    accounts = runtime.services.accounts
    accounts.settings = accounts.settings.model_copy(update={"google_client_id": None})
    resp = await client.get("/api/v1/auth/google/start")
    assert resp.status_code == 404
    assert resp.json()["detail"]["reason"] == "google_not_configured"
    assert "PULSE_GOOGLE_CLIENT_ID" in resp.json()["detail"]["message"]
    assert (await client.get(CALLBACK, params={"code": "c", "state": "s"})).status_code == 404


async def test_a_user_with_two_factor_still_gets_the_second_factor_step(client: httpx.AsyncClient, sink: Sink,
                                                                        idp: FakeOidcProvider,
                                                                        clock: FakeClock) -> None:
    await signup_verified(client, sink, "tf@example.com")
    session = bearer(await signin(client, "tf@example.com"))
    secret = (await client.post("/api/v1/account/two-factor/enrol", headers=session)).json()["secret"]
    confirm = await client.post("/api/v1/account/two-factor/confirm", headers=session,
                                json={"code": pyotp.TOTP(secret).at(clock.now_ms() // 1000)})
    assert confirm.status_code == 200
    clock.advance(60_000)

    idp.user = FakeAccount(sub="google-sub-7", email="tf@example.com")
    resp = await google_signin(client, "/alerts")
    assert resp.status_code == 302
    target = urlsplit(resp.headers["location"])
    assert (target.path, target.query) == ("/signin", "next=/alerts")
    assert target.fragment.startswith("second_factor=")
    assert "mp_access" not in resp.cookies  # Google was only the first factor
    challenge = target.fragment.removeprefix("second_factor=")
    done = await client.post("/api/v1/auth/signin/second-factor",
                             json={"challenge": challenge, "code": pyotp.TOTP(secret).at(clock.now_ms() // 1000)})
    assert done.status_code == 200, done.text


async def test_a_state_is_short_lived(client: httpx.AsyncClient, idp: FakeOidcProvider, runtime: Runtime,
                                      clock: FakeClock) -> None:
    back = await at_provider(client)
    clock.advance(601_000)  # states live 10 minutes
    late = await client.get(CALLBACK, params=dict(back.params))
    assert late.status_code == 400 and late.json()["detail"]["reason"] == "google_state", late.text
    assert await count_users(runtime) == 0


async def test_a_suspended_account_cannot_sign_in_with_google(client: httpx.AsyncClient, sink: Sink,
                                                              idp: FakeOidcProvider, runtime: Runtime) -> None:
    user_id = await signup_verified(client, sink, "held@example.com")
    async with runtime.sessions() as s:
        await s.execute(update(UserRow).where(UserRow.id == user_id).values(status="suspended"))
        await s.commit()
    idp.user = FakeAccount(sub="google-sub-8", email="held@example.com")
    resp = await google_signin(client)
    assert resp.status_code == 403 and resp.json()["detail"]["reason"] == "account_suspended", resp.text
    assert "mp_access" not in resp.cookies


async def test_a_new_account_goes_through_onboarding_carrying_next(client: httpx.AsyncClient,
                                                                   idp: FakeOidcProvider) -> None:
    idp.user = FakeAccount(sub="google-sub-9", email="fresh@gmail.com")
    first = await google_signin(client, "/alerts")
    assert first.headers["location"] == "/onboarding?next=/alerts"
    client.cookies.clear()
    again = await google_signin(client, "/alerts")  # known now: straight to next
    assert again.headers["location"] == "/alerts"
    idp.user = FakeAccount(sub="google-sub-10", email="fresh2@gmail.com")
    assert (await google_signin(client, "/")).headers["location"] == "/onboarding"
