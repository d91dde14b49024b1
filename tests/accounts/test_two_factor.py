"""TOTP as a second factor with codes computed by pyotp at the injected clock's time: enrol, confirm, sign in with
a code or a recovery code (each once), disable. A password alone then only earns a challenge."""

from __future__ import annotations

from typing import Any

import httpx
import pyotp
from fastapi import FastAPI
from nacl.signing import SigningKey

from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime

from .conftest import STRONG, Sink, bearer, signed_in_admin, signin, signup_verified
from .test_wallets import solana_proof

EMAIL = "tess@example.com"


def code(secret: str, clock: FakeClock) -> str:
    return pyotp.TOTP(secret).at(clock.now_ms() // 1000)


async def enrolled(client: httpx.AsyncClient, sink: Sink, clock: FakeClock) -> tuple[dict[str, str], str, list[str]]:
    """A verified user with two-factor on: the session's header, the secret and the recovery codes."""
    await signup_verified(client, sink, EMAIL)
    session = bearer(await signin(client, EMAIL))
    assert (await client.get("/api/v1/auth/me", headers=session)).json()["two_factor"] is False
    enrol = await client.post("/api/v1/account/two-factor/enrol", headers=session)
    assert enrol.status_code == 200, enrol.text
    secret = enrol.json()["secret"]
    assert enrol.json()["otpauth_uri"].startswith("otpauth://totp/")
    wrong = await client.post("/api/v1/account/two-factor/confirm", headers=session, json={"code": "000000"
                              if code(secret, clock) != "000000" else "111111"})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "code"], wrong.text
    confirmed = await client.post("/api/v1/account/two-factor/confirm", headers=session,
                                  json={"code": code(secret, clock)})
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert len(set(codes)) == 10
    assert (await client.get("/api/v1/auth/me", headers=session)).json()["two_factor"] is True
    clock.advance(30_000)  # the confirming code's step is spent
    return session, secret, codes


async def challenge(client: httpx.AsyncClient) -> str:
    resp = await client.post("/api/v1/auth/signin", json={"email": EMAIL, "password": STRONG})
    assert resp.status_code == 403, resp.text
    assert resp.json()["detail"]["reason"] == "second_factor_required"
    assert "mp_access" not in resp.cookies
    return str(resp.json()["detail"]["challenge"])


async def second(client: httpx.AsyncClient, challenge_token: str, value: str) -> httpx.Response:
    resp = await client.post("/api/v1/auth/signin/second-factor", json={"challenge": challenge_token, "code": value})
    client.cookies.clear()
    return resp


async def test_password_then_code_signs_in_and_no_code_works_twice(client: httpx.AsyncClient, sink: Sink,
                                                                    clock: FakeClock) -> None:
    _, secret, codes = await enrolled(client, sink, clock)
    token = await challenge(client)
    ok = await second(client, token, code(secret, clock))
    assert ok.status_code == 200 and set(ok.json()) == {"access_token", "refresh_token", "token_type",
                                                         "expires_in"}, ok.text
    me = await client.get("/api/v1/auth/me", headers=bearer(ok.json()))
    assert me.json()["email"] == EMAIL
    replay = await second(client, await challenge(client), code(secret, clock))
    assert replay.status_code == 422 and replay.json()["detail"][0]["loc"] == ["body", "code"], replay.text
    clock.advance(30_000)
    assert (await second(client, await challenge(client), code(secret, clock))).status_code == 200
    assert (await second(client, await challenge(client), codes[0])).status_code == 200
    assert (await second(client, await challenge(client), codes[0])).status_code == 422  # recovery codes: once


async def test_bad_challenges_are_refused(client: httpx.AsyncClient, sink: Sink, clock: FakeClock) -> None:
    session, secret, _ = await enrolled(client, sink, clock)
    access = session["Authorization"].removeprefix("Bearer ")
    for bad in (access, "not-a-jwt"):  # an access token is not a challenge
        resp = await second(client, bad, code(secret, clock))
        assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "challenge"], resp.text
    token = await challenge(client)
    clock.advance(300_000)
    late = await second(client, token, code(secret, clock))
    assert late.status_code == 422 and "expired" in late.text, late.text


async def test_wrong_codes_lock_the_second_step(client: httpx.AsyncClient, sink: Sink, clock: FakeClock) -> None:
    _, secret, _ = await enrolled(client, sink, clock)
    token = await challenge(client)
    right = code(secret, clock)
    wrong = "000000" if right != "000000" else "111111"
    answers = []
    for n in range(6):
        answers.append((await second(client, token, wrong)).status_code)
        clock.advance(2 ** n * 1000)  # each wrong code's delay (1, 2, 4… s) has passed
    assert answers == [422] * 5 + [429]
    assert (await second(client, token, right)).status_code == 429  # locked, even with the right code


async def test_disable_needs_a_code_and_then_the_password_is_enough(client: httpx.AsyncClient, sink: Sink,
                                                                    clock: FakeClock, app: FastAPI) -> None:
    session, secret, codes = await enrolled(client, sink, clock)
    again = await client.post("/api/v1/account/two-factor/enrol", headers=session)
    assert again.status_code == 409, again.text
    no = await client.post("/api/v1/account/two-factor/disable", headers=session, json={"code": "abcdef0123"})
    assert no.status_code == 422, no.text
    await challenge(client)  # still on
    off = await client.post("/api/v1/account/two-factor/disable", headers=session, json={"code": codes[3]})
    assert off.status_code == 204, off.text
    tokens: dict[str, Any] = await signin(client, EMAIL)
    assert "access_token" in tokens


async def test_admins_can_be_required_to_use_two_factor(client: httpx.AsyncClient, runtime: Runtime,
                                                        clock: FakeClock) -> None:
    runtime.services.accounts.settings.admin_require_two_factor = True
    admin = await signed_in_admin(client, runtime)
    refused = await client.get("/api/v1/admin/users", headers={"Authorization": admin})
    assert refused.status_code == 403 and refused.json()["detail"]["reason"] == "two_factor_required", refused.text
    secret = (await client.post("/api/v1/account/two-factor/enrol", headers={"Authorization": admin})).json()["secret"]
    confirmed = await client.post("/api/v1/account/two-factor/confirm", headers={"Authorization": admin},
                                  json={"code": code(secret, clock)})
    assert confirmed.status_code == 200, confirmed.text
    assert (await client.get("/api/v1/admin/users", headers={"Authorization": admin})).status_code == 200
    runtime.services.accounts.settings.admin_require_two_factor = False


async def test_a_wallet_sign_in_also_asks_for_the_second_factor(client: httpx.AsyncClient, sink: Sink,
                                                                clock: FakeClock) -> None:
    session, secret, _ = await enrolled(client, sink, clock)
    key = SigningKey.generate()
    assert (await client.post("/api/v1/auth/solana/verify", headers=session,
                              json=await solana_proof(client, key))).status_code == 200  # linked
    resp = await client.post("/api/v1/auth/solana/verify", json=await solana_proof(client, key))
    assert resp.status_code == 403 and resp.json()["detail"]["reason"] == "second_factor_required", resp.text
    assert "mp_access" not in resp.cookies
    ok = await second(client, resp.json()["detail"]["challenge"], code(secret, clock))
    assert ok.status_code == 200, ok.text
