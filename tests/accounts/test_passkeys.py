"""Passkeys with a software authenticator (tests/support/authenticator.py) so the real `webauthn` verification runs:
registration, passwordless sign-in, the second factor after a password, and the refusals (another origin or RP id,
a replayed or expired challenge, a cloned authenticator's counter, another user's credential, malformed answers)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import update

from marketpulse.accounts.passkeys import CHALLENGE_TTL_S, origins_of, rp_id_of
from marketpulse.accounts.tables import UserRow
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.authenticator import SoftAuthenticator, b64url

from .conftest import STRONG, Sink, bearer, signed_in_admin, signin, signup_verified

ORIGIN = "http://test"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"public_url": ORIGIN})


Registered = tuple[dict[str, str], SoftAuthenticator, dict[str, Any]]


async def registered(client: httpx.AsyncClient, sink: Sink, email: str,
                     device: SoftAuthenticator | None = None) -> Registered:
    """A verified, signed-in user with one passkey on `device`: the session header, the device, the passkey."""
    await signup_verified(client, sink, email)
    session = bearer(await signin(client, email))
    device = device or SoftAuthenticator(origin=ORIGIN)
    options = await client.post("/api/v1/account/passkeys/register/options", headers=session)
    assert options.status_code == 200, options.text
    credential = device.create(options.json())
    done = await client.post("/api/v1/account/passkeys/register/verify", headers=session,
                             json={"credential": credential, "name": "laptop"})
    assert done.status_code == 201, done.text
    return session, device, done.json()


async def signin_options(client: httpx.AsyncClient, email: str | None = None) -> dict[str, Any]:
    resp = await client.post("/api/v1/auth/passkeys/signin/options", json={"email": email} if email else {})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def passkey_signin(client: httpx.AsyncClient, device: SoftAuthenticator,
                         email: str | None = None) -> httpx.Response:
    started = await signin_options(client, email)
    return await client.post("/api/v1/auth/passkeys/signin/verify", json={
        "challenge_id": started["challenge_id"], "credential": device.get(started["options"])})


def refused(resp: httpx.Response, field: str = "credential") -> str:
    assert resp.status_code == 422, resp.text
    error = resp.json()["detail"][0]
    assert error["loc"] == ["body", field], error
    return str(error["msg"])


async def test_register_list_and_delete_a_passkey(client: httpx.AsyncClient, sink: Sink) -> None:
    session, device, passkey = await registered(client, sink, "pk@example.com")
    assert passkey["name"] == "laptop" and passkey["transports"] == ["internal"]
    listed = await client.get("/api/v1/account/passkeys", headers=session)
    assert [p["id"] for p in listed.json()["data"]] == [passkey["id"]]
    assert (await client.get("/api/v1/auth/me", headers=session)).json()["passkeys"] == 1

    again = (await client.post("/api/v1/account/passkeys/register/options", headers=session)).json()
    assert again["rp"]["id"] == "test" and again["user"]["name"] == "pk@example.com"
    assert [c["id"] for c in again["excludeCredentials"]] == [b64url(c) for c in device.credentials]

    gone = await client.delete(f"/api/v1/account/passkeys/{passkey['id']}", headers=session)
    assert gone.status_code == 204
    assert (await client.get("/api/v1/account/passkeys", headers=session)).json()["data"] == []
    assert (await client.delete(f"/api/v1/account/passkeys/{passkey['id']}", headers=session)).status_code == 404


async def test_passwordless_sign_in_with_and_without_an_address(client: httpx.AsyncClient, sink: Sink) -> None:
    _, device, _ = await registered(client, sink, "nopw@example.com")
    started = await signin_options(client, "nopw@example.com")
    assert started["options"]["rpId"] == "test" and started["options"]["userVerification"] == "required"
    assert len(started["options"]["allowCredentials"]) == 1
    resp = await client.post("/api/v1/auth/passkeys/signin/verify", json={
        "challenge_id": started["challenge_id"], "credential": device.get(started["options"])})
    assert resp.status_code == 200, resp.text
    assert {"mp_access", "mp_refresh", "mp_csrf"} <= set(resp.cookies.keys())
    me = await client.get("/api/v1/auth/me", headers=bearer(resp.json()))
    assert me.json()["email"] == "nopw@example.com"

    client.cookies.clear()
    discoverable = await signin_options(client)  # no address: the browser offers what it holds for the site
    assert discoverable["options"].get("allowCredentials", []) == []
    resp = await client.post("/api/v1/auth/passkeys/signin/verify", json={
        "challenge_id": discoverable["challenge_id"], "credential": device.get(discoverable["options"])})
    assert resp.status_code == 200, resp.text


async def test_a_challenge_works_once_and_expires(client: httpx.AsyncClient, sink: Sink, clock: FakeClock) -> None:
    _, device, _ = await registered(client, sink, "once@example.com")
    started = await signin_options(client, "once@example.com")
    assertion = device.get(started["options"])
    body = {"challenge_id": started["challenge_id"], "credential": assertion}
    assert (await client.post("/api/v1/auth/passkeys/signin/verify", json=body)).status_code == 200
    replay = await client.post("/api/v1/auth/passkeys/signin/verify", json=body)
    assert "already used" in refused(replay, "challenge_id")
    fresh_answer = {"challenge_id": started["challenge_id"], "credential": device.get(started["options"])}
    assert "already used" in refused(await client.post("/api/v1/auth/passkeys/signin/verify", json=fresh_answer),
                                     "challenge_id")

    late = await signin_options(client, "once@example.com")
    clock.advance(CHALLENGE_TTL_S * 1000)
    resp = await client.post("/api/v1/auth/passkeys/signin/verify", json={
        "challenge_id": late["challenge_id"], "credential": device.get(late["options"])})
    assert "expired" in refused(resp, "challenge_id")


async def test_another_origin_or_rp_id_is_refused(client: httpx.AsyncClient, sink: Sink) -> None:
    session, device, _ = await registered(client, sink, "origin@example.com")
    options = (await client.post("/api/v1/account/passkeys/register/options", headers=session)).json()
    phished = await client.post("/api/v1/account/passkeys/register/verify", headers=session, json={
        "credential": SoftAuthenticator(origin="https://evil.example").create(options), "name": "evil"})
    refused(phished)
    options = (await client.post("/api/v1/account/passkeys/register/options", headers=session)).json()
    other_rp = await client.post("/api/v1/account/passkeys/register/verify", headers=session, json={
        "credential": SoftAuthenticator(origin=ORIGIN).create(options, rp_id="evil.example"), "name": "evil"})
    refused(other_rp)
    assert len((await client.get("/api/v1/account/passkeys", headers=session)).json()["data"]) == 1

    started = await signin_options(client, "origin@example.com")
    resp = await client.post("/api/v1/auth/passkeys/signin/verify", json={
        "challenge_id": started["challenge_id"], "credential": device.get(started["options"],
                                                                          origin="https://evil.example")})
    assert "origin" in refused(resp).lower()
    resp = await client.post("/api/v1/auth/passkeys/signin/verify", json={
        "challenge_id": started["challenge_id"], "credential": device.get(started["options"],
                                                                          rp_id="evil.example")})
    assert "rp id" in refused(resp).lower()
    # Refusals spent nothing: the right answer to the same challenge still works.
    ok = await client.post("/api/v1/auth/passkeys/signin/verify", json={
        "challenge_id": started["challenge_id"], "credential": device.get(started["options"])})
    assert ok.status_code == 200, ok.text


async def test_a_cloned_authenticator_is_refused_by_its_counter(client: httpx.AsyncClient, sink: Sink) -> None:
    _, device, _ = await registered(client, sink, "clone@example.com")
    clone = device.clone()
    assert (await passkey_signin(client, device, "clone@example.com")).status_code == 200  # counter 1
    assert (await passkey_signin(client, device, "clone@example.com")).status_code == 200  # counter 2
    resp = await passkey_signin(client, clone, "clone@example.com")  # counter 1 again
    assert "sign count" in refused(resp).lower()


async def test_another_users_passkey_is_refused(client: httpx.AsyncClient, sink: Sink) -> None:
    session_a, device_a, _ = await registered(client, sink, "a@example.com")
    session_b, device_b, passkey_b = await registered(client, sink, "b@example.com")
    started = await signin_options(client, "a@example.com")  # A's challenge, answered by B's device
    resp = await client.post("/api/v1/auth/passkeys/signin/verify", json={
        "challenge_id": started["challenge_id"],
        "credential": device_b.get(started["options"] | {"allowCredentials": []})})
    assert "not registered to this account" in refused(resp)
    assert (await client.delete(f"/api/v1/account/passkeys/{passkey_b['id']}", headers=session_a)).status_code == 404
    assert len((await client.get("/api/v1/account/passkeys", headers=session_b)).json()["data"]) == 1

    # As a second factor: A's password challenge can't be finished by B's passkey.
    first = await client.post("/api/v1/auth/signin", json={"email": "a@example.com", "password": STRONG})
    detail = first.json()["detail"]
    b_options = (await signin_options(client, "b@example.com"))["options"]
    resp = await client.post("/api/v1/auth/signin/second-factor", json={
        "challenge": detail["challenge"], "credential": device_b.get(b_options)})
    refused(resp)
    anyone = (await signin_options(client))["options"]  # a challenge issued to no one (the page after Google)
    resp = await client.post("/api/v1/auth/signin/second-factor", json={
        "challenge": detail["challenge"], "credential": device_b.get(anyone)})
    assert "not registered to this account" in refused(resp)
    resp = await client.post("/api/v1/auth/signin/second-factor", json={
        "challenge": detail["challenge"], "credential": device_a.get(anyone)})
    assert resp.status_code == 200, resp.text


async def test_a_passkey_is_a_second_factor_after_the_password(client: httpx.AsyncClient, sink: Sink) -> None:
    session, device, passkey = await registered(client, sink, "second@example.com")
    first = await client.post("/api/v1/auth/signin", json={"email": "second@example.com", "password": STRONG})
    assert first.status_code == 403, first.text
    detail = first.json()["detail"]
    assert detail["reason"] == "second_factor_required" and detail["methods"] == ["passkey"]
    assert "mp_access" not in first.cookies
    assertion = device.get(detail["passkey_options"])
    both = await client.post("/api/v1/auth/signin/second-factor",
                             json={"challenge": detail["challenge"], "credential": assertion, "code": "123456"})
    assert both.status_code == 422
    done = await client.post("/api/v1/auth/signin/second-factor",
                             json={"challenge": detail["challenge"], "credential": assertion})
    assert done.status_code == 200, done.text
    assert (await client.get("/api/v1/auth/me", headers=bearer(done.json()))).status_code == 200
    replay = await client.post("/api/v1/auth/signin/second-factor",
                               json={"challenge": detail["challenge"], "credential": assertion})
    assert "already used" in refused(replay)

    await client.delete(f"/api/v1/account/passkeys/{passkey['id']}", headers=session)
    await signin(client, "second@example.com")  # without a passkey the password is enough again


async def test_a_passkey_is_an_admins_second_factor_when_one_is_required(client: httpx.AsyncClient, sink: Sink,
                                                                         runtime: Runtime) -> None:
    runtime.services.accounts.settings.admin_require_two_factor = True
    try:
        admin = {"Authorization": await signed_in_admin(client, runtime, "keyed-root@example.com")}
        refused_admin = await client.get("/api/v1/admin/users", headers=admin)
        assert refused_admin.status_code == 403, refused_admin.text
        assert refused_admin.json()["detail"]["reason"] == "two_factor_required"

        device = SoftAuthenticator(origin=ORIGIN)  # no TOTP: a passkey is the only second factor
        options = await client.post("/api/v1/account/passkeys/register/options", headers=admin)
        done = await client.post("/api/v1/account/passkeys/register/verify", headers=admin,
                                 json={"credential": device.create(options.json()), "name": "key"})
        assert done.status_code == 201, done.text
        assert (await client.get("/api/v1/admin/users", headers=admin)).status_code == 200

        # and it is really asked: a new password sign-in needs the passkey before the admin API answers
        first = await client.post("/api/v1/auth/signin", json={"email": "keyed-root@example.com", "password": STRONG})
        assert first.status_code == 403 and first.json()["detail"]["methods"] == ["passkey"], first.text
        detail = first.json()["detail"]
        second = await client.post("/api/v1/auth/signin/second-factor", json={
            "challenge": detail["challenge"], "credential": device.get(detail["passkey_options"])})
        assert second.status_code == 200, second.text
        assert (await client.get("/api/v1/admin/users", headers=bearer(second.json()))).status_code == 200

        await client.delete(f"/api/v1/account/passkeys/{done.json()['id']}", headers=admin)
        again = await client.get("/api/v1/admin/users", headers=bearer(second.json()))
        assert again.status_code == 403 and again.json()["detail"]["reason"] == "two_factor_required"
    finally:
        runtime.services.accounts.settings.admin_require_two_factor = False


async def test_malformed_answers_are_4xx(client: httpx.AsyncClient, sink: Sink) -> None:
    session, _, _ = await registered(client, sink, "junk@example.com")
    started = await signin_options(client)
    for credential in ({}, {"id": "x", "response": {"clientDataJSON": "!!"}}, {"id": 5, "response": []},
                       {"id": "AAAA", "rawId": "AAAA", "type": "public-key",
                        "response": {"clientDataJSON": "e30", "authenticatorData": "", "signature": ""}}):
        resp = await client.post("/api/v1/auth/passkeys/signin/verify",
                                 json={"challenge_id": started["challenge_id"], "credential": credential})
        assert resp.status_code == 422, (credential, resp.text)
        resp = await client.post("/api/v1/account/passkeys/register/verify", headers=session,
                                 json={"credential": credential, "name": "x"})
        assert resp.status_code == 422, (credential, resp.text)
    unknown = await client.post("/api/v1/auth/passkeys/signin/verify",
                                json={"challenge_id": "no-such-challenge", "credential": {}})
    refused(unknown, "challenge_id")


async def test_rp_id_and_origin_follow_the_settings_or_the_public_url(client: httpx.AsyncClient, sink: Sink,
                                                                      settings: Settings, runtime: Runtime) -> None:
    defaults = Settings(public_url="https://pulse.example.com:8443/app")
    assert (rp_id_of(defaults), origins_of(defaults)) == ("pulse.example.com", ["https://pulse.example.com:8443"])
    demo = Settings(public_url="http://127.0.0.1:8000")  # browsers refuse IP addresses as RP ids
    assert (rp_id_of(demo), origins_of(demo)) == ("localhost", ["http://127.0.0.1:8000", "http://localhost:8000"])
    named = Settings(public_url="http://127.0.0.1:8000", webauthn_rp_id="example.com",
                     webauthn_origin="https://www.example.com/")
    assert (rp_id_of(named), origins_of(named)) == ("example.com", ["https://www.example.com"])

    _, device, _ = await registered(client, sink, "rp@example.com")
    accounts = runtime.services.accounts
    accounts.settings = settings.model_copy(update={"webauthn_rp_id": "elsewhere.example",
                                                    "webauthn_origin": "https://elsewhere.example"})
    started = await signin_options(client, "rp@example.com")
    assert started["options"]["rpId"] == "elsewhere.example"
    # The passkey was made for RP "test" at http://test: under the new settings it no longer verifies.
    resp = await client.post("/api/v1/auth/passkeys/signin/verify", json={
        "challenge_id": started["challenge_id"], "credential": device.get(started["options"], rp_id="test")})
    refused(resp)


async def test_a_suspended_account_cannot_sign_in_with_its_passkey(client: httpx.AsyncClient, sink: Sink,
                                                                   runtime: Runtime) -> None:
    session, device, _ = await registered(client, sink, "held@example.com")
    user_id = (await client.get("/api/v1/auth/me", headers=session)).json()["id"]
    async with runtime.sessions() as s:
        await s.execute(update(UserRow).where(UserRow.id == user_id).values(status="suspended"))
        await s.commit()
    resp = await passkey_signin(client, device, "held@example.com")
    assert resp.status_code == 403 and resp.json()["detail"]["reason"] == "account_suspended", resp.text
