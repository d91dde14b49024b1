"""Brute-force protection: every failed sign-in makes the next attempt wait twice as long (1, 2, 4, 8… s on the
injected clock), enough failures lock the account until its mailed link lifts it, and each failure and lock is a
security event in the log and the audit log, never with the password."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from structlog.testing import capture_logs

from marketpulse.accounts.audit import AuditQuery
from marketpulse.accounts.brute_force import Attempts, Rule, after_failure, refusal
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime

from .conftest import STRONG, Sink, signin, signup_verified
from .test_auth_api import from_address

WRONG = "Not-The-Password-7"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_each_failure_doubles_the_wait_and_the_limit_locks() -> None:
    rule = Rule(limit=5, window_ms=900_000)
    attempts: Attempts | None = None
    now, waits = 0, []
    for _ in range(4):
        attempts = after_failure(attempts, now, rule)
        found = refusal(attempts, now, rule)
        assert found is not None and not found.locked
        waits.append(found.retry_after_s)
        now += found.retry_after_s * 1000
        assert refusal(attempts, now, rule) is None  # once the wait is over the next attempt is judged
    assert waits == [1, 2, 4, 8]
    attempts = after_failure(attempts, now, rule)  # the fifth
    locked = refusal(attempts, now + 60_000, rule)
    assert locked is not None and locked.locked and locked.retry_after_s == 840
    assert refusal(attempts, now + 900_000, rule) is None  # the lock runs out with the window


def test_failures_older_than_the_window_are_forgotten() -> None:
    rule = Rule.parse("3/15minutes")
    assert rule == Rule(limit=3, window_ms=900_000)
    first = after_failure(None, 0, rule)
    second = after_failure(first, 1_000, rule)
    assert second.failures == 2
    assert after_failure(second, 1_000 + 900_000, rule).failures == 1


async def test_retry_after_grows_1_2_4_8_seconds_on_the_injected_clock(
    client: httpx.AsyncClient, sink: Sink, clock: FakeClock, runtime: Runtime
) -> None:
    runtime.settings.signin_failure_limit = "10/15minutes"
    await signup_verified(client, sink, "slow@example.com")
    waits = []
    for _ in range(4):
        failed = await client.post("/api/v1/auth/signin", json={"email": "slow@example.com", "password": WRONG})
        assert failed.status_code == 401
        early = await client.post("/api/v1/auth/signin", json={"email": "slow@example.com", "password": STRONG})
        assert early.status_code == 429  # the right password too: guessing costs time
        waits.append(int(early.headers["retry-after"]))
        clock.advance(waits[-1] * 1000 - 1)
        assert (await client.post("/api/v1/auth/signin", json={"email": "slow@example.com", "password": STRONG})
                ).status_code == 429
        clock.advance(1)
    assert waits == [1, 2, 4, 8]
    await signin(client, "slow@example.com")  # after the last wait, the right password works


async def test_the_client_address_is_delayed_across_accounts(app: FastAPI, clock: FakeClock) -> None:
    async with from_address(app, "10.7.0.9") as sprayer:
        assert (await sprayer.post("/api/v1/auth/signin", json={"email": "a@example.com", "password": WRONG})
                ).status_code == 401
        other = await sprayer.post("/api/v1/auth/signin", json={"email": "b@example.com", "password": WRONG})
        assert other.status_code == 429 and other.headers["retry-after"] == "1"
    async with from_address(app, "10.7.0.10") as elsewhere:  # another address is judged on its own
        assert (await elsewhere.post("/api/v1/auth/signin", json={"email": "b@example.com", "password": WRONG})
                ).status_code == 401


async def test_the_limit_locks_the_account_until_the_mailed_link_lifts_it(
    app: FastAPI, sink: Sink, clock: FakeClock, runtime: Runtime
) -> None:
    runtime.settings.signin_failure_limit = "3/15minutes"
    async with from_address(app, "10.6.0.1") as client:
        user_id = await signup_verified(client, sink, "locked@example.com")
    with capture_logs() as logs:
        for n in range(3):
            async with from_address(app, f"10.6.1.{n}") as guesser:
                assert (await guesser.post("/api/v1/auth/signin",
                                           json={"email": "locked@example.com", "password": WRONG})).status_code == 401
            clock.advance(2 ** n * 1000)
    async with from_address(app, "10.6.0.1") as client:
        locked = await client.post("/api/v1/auth/signin", json={"email": "locked@example.com", "password": STRONG})
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 8
        assert "unlock" in locked.json()["detail"]
        mail = sink.to("locked@example.com")[-1]
        assert mail["Subject"] == "Your marketpulse account was locked"
        token = sink.token("locked@example.com")
        page = await client.get(f"/unlock?token={token}")
        assert page.status_code == 200 and "<button>" in page.text and token in page.text
        unlocked = await client.post("/api/v1/auth/unlock", json={"token": token})
        assert unlocked.status_code == 200, unlocked.text
        await signin(client, "locked@example.com")
        again = await client.post("/api/v1/auth/unlock", json={"token": token})  # single use
        assert again.status_code == 422 and again.json()["detail"][0]["loc"] == ["body", "token"]
    events = [e for e in logs if e["event"].startswith("security:")]
    assert [e["event"] for e in events].count("security: sign-in failed") == 3
    assert {"event": "security: sign-in lock set", "by": "account"}.items() <= next(
        e for e in events if e["event"] == "security: sign-in lock set").items()
    assert WRONG not in repr(logs) and STRONG not in repr(logs)
    entries, _ = await runtime.services.accounts.audit.search(AuditQuery(target_id=user_id, limit=20))
    actions = [e.action for e in reversed(entries)]
    assert actions == ["auth.signin_failed"] * 3 + ["auth.signin_locked", "auth.account_unlocked"]
    assert [e.client for e in reversed(entries)][:3] == ["10.6.1.0", "10.6.1.1", "10.6.1.2"]
    assert all(WRONG not in repr(e.new_values) for e in entries)


async def test_the_unlock_page_posts_the_token_once(app: FastAPI, sink: Sink, clock: FakeClock,
                                                    runtime: Runtime) -> None:
    runtime.settings.signin_failure_limit = "1/15minutes"
    async with from_address(app, "10.5.0.1") as client:
        await signup_verified(client, sink, "page@example.com")
        await client.post("/api/v1/auth/signin", json={"email": "page@example.com", "password": WRONG})
        token = sink.token("page@example.com")
        done = await client.post("/unlock", content=f"token={token}", headers=FORM)
        assert done.status_code == 200 and "unlocked" in done.text
        assert (await client.post("/unlock", content=f"token={token}", headers=FORM)).status_code == 400
    async with from_address(app, "10.5.0.2") as other:  # the failing client still waits out its own delay
        await signin(other, "page@example.com")


async def test_the_unlock_link_lives_as_long_as_its_setting(app: FastAPI, sink: Sink, clock: FakeClock,
                                                            runtime: Runtime) -> None:
    runtime.settings.signin_failure_limit = "1/15minutes"
    runtime.settings.account_unlock_ttl_s = 120
    async with from_address(app, "10.4.0.1") as client:
        await signup_verified(client, sink, "ttl@example.com")
        await client.post("/api/v1/auth/signin", json={"email": "ttl@example.com", "password": WRONG})
        token = sink.token("ttl@example.com")
        clock.advance(120_000)
        late = await client.post("/api/v1/auth/unlock", json={"token": token})
        assert late.status_code == 422
        assert "expired" in late.json()["detail"][0]["msg"]


async def test_a_password_reset_lifts_the_lock(client: httpx.AsyncClient, sink: Sink, clock: FakeClock,
                                               runtime: Runtime) -> None:
    runtime.settings.signin_failure_limit = "1/15minutes"
    await signup_verified(client, sink, "forgot@example.com")
    await client.post("/api/v1/auth/signin", json={"email": "forgot@example.com", "password": WRONG})
    await client.post("/api/v1/auth/request-password-reset", json={"email": "forgot@example.com"})
    new = "Another-Good-Pass-5"
    reset = await client.post("/api/v1/auth/reset-password",
                              json={"token": sink.token("forgot@example.com"), "new_password": new})
    assert reset.status_code == 200
    clock.advance(1000)  # the client's own one-second delay
    await signin(client, "forgot@example.com", new)
