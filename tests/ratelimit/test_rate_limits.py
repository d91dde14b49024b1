"""Per-plan API rate limits on the whole app (`create_app`): headers on every limited answer, 429 with Retry-After
and a JSON error past the plan's window, budgets per user, per API key and per anonymous address, exemptions, and
`PULSE_RATE_LIMITS=off`. Small windows are swapped in for the plan table's (same code path, same MemoryStorage);
the only wait is for a one-second window to start over."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from marketpulse.accounts.api_keys import Scope
from marketpulse.accounts.plans import Plan
from marketpulse.api.app import create_app
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.ratelimit.core import Window
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.waiting import eventually

API_KEY = "test-key"
STRONG = "Correct-Horse-9-battery"
SMALL = {"free": 3, "pro": 5, "elite": 7, "enterprise": 9}  # requests a minute in these tests


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:  # the suite's default: rate limits on
    return Settings(database_url=db_url, bus_url="memory://", data_dir=tmp_path / "var", ingest_api_key=API_KEY,
                    jwt_secret_key="test-jwt-secret-of-at-least-32-bytes!")


@pytest.fixture
def app(runtime: Runtime) -> Any:
    return create_app(runtime)  # the lifespan (realtime bridge) is beside the point here


def small_windows(plan: Plan) -> tuple[Window, ...]:
    return (Window(SMALL[plan.name], 60),)


def client_at(app: Any, address: str = "10.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 50000)),
                             base_url="http://localhost")


async def user_token(runtime: Runtime, email: str, plan: str) -> tuple[str, str]:
    """A signed-in user of `plan`: their id and an access token."""
    accounts = runtime.services.accounts
    user = await accounts.create_user(email, STRONG, plan=plan, verified=True)
    return user.id, (await accounts.start_session(user)).access_token


async def test_anonymous_callers_get_the_free_plans_limit_in_the_headers(app: Any) -> None:
    async with client_at(app) as client:
        first = await client.get("/api/v1/plans")
        second = await client.get("/api/v1/nothing-here")  # errors are limited answers too
    assert first.status_code == 200 and second.status_code == 404
    assert first.headers["x-ratelimit-limit"] == "100"  # free: 100 requests a minute (seed 002 §7.3, seed 003)
    assert [first.headers["x-ratelimit-remaining"], second.headers["x-ratelimit-remaining"]] == ["99", "98"]
    reset = int(first.headers["x-ratelimit-reset"])
    assert time.time() < reset <= time.time() + 61  # epoch seconds when the minute's window starts over


async def test_past_the_window_429_with_retry_after_and_a_json_error(app: Any, runtime: Runtime) -> None:
    runtime.services.rate_limits.windows_of = small_windows
    async with client_at(app, "10.0.0.2") as client:
        answers = [await client.get("/api/v1/plans") for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert [r.headers["x-ratelimit-remaining"] for r in answers] == ["2", "1", "0", "0"]
        refused = answers[-1]
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["content-type"] == "application/json"
        body = refused.json()["detail"]
        assert body["reason"] == "rate_limited" and body["limit"] == 3 and body["window_s"] == 60
        for path in ("/health/live", "/metrics", "/static/dashboard.js"):  # never limited, never counted
            resp = await client.get(path)
            assert resp.status_code == 200 and "x-ratelimit-limit" not in resp.headers, path
        ingest = await client.get("/api/v1/plans", headers={"X-API-Key": API_KEY})  # the platform's own feeder
        assert ingest.status_code == 200 and "x-ratelimit-limit" not in ingest.headers
        wrong = await client.get("/api/v1/plans", headers={"X-API-Key": "guess"})
        assert wrong.status_code == 429
    async with client_at(app, "10.0.0.3") as other:  # each anonymous address has its own budget
        assert (await other.get("/api/v1/plans")).status_code == 200


async def test_each_user_gets_their_plans_limit_and_each_api_key_its_own_budget(app: Any, runtime: Runtime) -> None:
    runtime.services.rate_limits.windows_of = small_windows
    free_id, free = await user_token(runtime, "free@example.com", "free")
    _, pro = await user_token(runtime, "pro@example.com", "pro")
    _, key = await runtime.services.accounts.api_keys.create(free_id, "bot", [Scope.READ])
    async with client_at(app, "10.0.0.4") as client:
        pro_codes = [(await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {pro}"})).status_code
                     for _ in range(6)]
        assert pro_codes == [200] * 5 + [429]
        free_answers = [await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {free}"})
                        for _ in range(4)]
        assert [r.status_code for r in free_answers] == [200] * 3 + [429]
        assert free_answers[0].headers["x-ratelimit-limit"] == "3"
        keyed = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {key}"})
        assert keyed.status_code == 200 and keyed.headers["x-ratelimit-remaining"] == "2"
        anonymous = await client.get("/api/v1/plans")  # the same address, unsigned: a budget of its own
        assert anonymous.status_code == 200 and anonymous.headers["x-ratelimit-remaining"] == "2"
        forged = await client.get("/api/v1/plans", headers={"Authorization": "Bearer not-a-token"})
        assert forged.headers["x-ratelimit-remaining"] == "1"  # a bad credential counts as anonymous


async def test_the_plan_tables_day_quota_is_counted_too(app: Any, runtime: Runtime) -> None:
    runtime.services.rate_limits.windows_of = lambda plan: (Window(50, 60), Window(2, 86_400))
    async with client_at(app, "10.0.0.5") as client:
        answers = [await client.get("/api/v1/plans") for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert answers[0].headers["x-ratelimit-limit"] == "2"  # the window closest to refusing is the one shown
    assert int(answers[2].headers["retry-after"]) > 3600


async def test_a_window_starts_over_when_its_time_is_up(app: Any, runtime: Runtime) -> None:
    runtime.services.rate_limits.windows_of = lambda plan: (Window(2, 1),)
    async with client_at(app, "10.0.0.6") as client:
        codes = []
        while 429 not in codes:  # two fit in a one-second window (a loaded machine may straddle two)
            codes.append((await client.get("/api/v1/plans")).status_code)
            assert len(codes) <= 10, codes
        refused = await client.get("/api/v1/plans")
        reset = int(refused.headers.get("x-ratelimit-reset", time.time()))
        await asyncio.sleep(max(0.0, reset - time.time()))  # the only wait: to the end of a one-second window

        async def admitted() -> bool:
            return (await client.get("/api/v1/plans")).status_code == 200

        await eventually(admitted, deadline_s=5, every_s=0.1, what="the next window to admit a request")


@pytest.mark.parametrize("switch", ["off"])
async def test_off_switches_enforcement_off(db_url: str, tmp_path: Path, clock: FakeClock, switch: str) -> None:
    settings = Settings(database_url=db_url, bus_url="memory://", data_dir=tmp_path / "var", ingest_api_key=API_KEY,
                        rate_limits=switch)
    runtime = Runtime.open(settings, clock=clock, bus=MemoryBus())
    try:
        runtime.services.rate_limits.windows_of = small_windows
        application = create_app(runtime)
        async with client_at(application, "10.0.0.7") as client:
            answers = [await client.get("/api/v1/plans") for _ in range(10)]
        assert {r.status_code for r in answers} == {200}
        assert all("x-ratelimit-limit" not in r.headers for r in answers)
    finally:
        await runtime.close()


@pytest.mark.redis
async def test_api_processes_sharing_redis_share_the_counts(runtime: Runtime, redis_url: str,
                                                            redis_deployment: str) -> None:
    from marketpulse.accounts.plans import plan_named
    from marketpulse.accounts.service import limit_storage
    from marketpulse.ratelimit.service import ApiRateLimiter

    one, two = (ApiRateLimiter(limit_storage(redis_url, redis_deployment), small_windows) for _ in range(2))
    free = plan_named("free")
    allowed = [(await limiter.hit("addr:10.0.0.8", free)).allowed for limiter in (one, two, one, two)]
    assert allowed == [True, True, True, False]
