"""The settings page's API: your own sessions (list, sign one out) and notification preferences (per user, checked
against the plan table), each owner-scoped: another user's session id is a 404."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from marketpulse.accounts import account_views, views
from marketpulse.accounts.tables import UserRow
from marketpulse.api.errors import install_error_handlers
from marketpulse.runtime import Runtime

from .conftest import Sink, bearer, signin, signup_verified

PREFS = "/api/v1/account/preferences"
SESSIONS = "/api/v1/account/sessions"


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(views.router)
    app.include_router(account_views.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


async def test_preferences_start_at_the_defaults_and_keep_what_is_saved(client: httpx.AsyncClient,
                                                                        sink: Sink) -> None:
    await signup_verified(client, sink, "prefs@example.com")
    me = bearer(await signin(client, "prefs@example.com"))
    first = await client.get(PREFS, headers=me)
    assert first.status_code == 200
    assert first.json() == {"time_zone": "UTC", "quiet_hours_start": None, "quiet_hours_end": None,
                            "channels": ["email"], "quiet_hours_low_priority": "hold", "flood_limit_per_minute": 20}
    wanted = {"time_zone": "Europe/Berlin", "quiet_hours_start": "22:30", "quiet_hours_end": "07:00",
              "channels": ["email"], "quiet_hours_low_priority": "drop", "flood_limit_per_minute": 0}
    saved = await client.put(PREFS, json=wanted, headers=me)
    assert saved.status_code == 200 and saved.json() == wanted
    assert (await client.get(PREFS, headers=me)).json() == wanted
    assert (await client.get(PREFS)).status_code == 401


@pytest.mark.parametrize(("change", "field"), [
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"quiet_hours_start": "25:00", "quiet_hours_end": "07:00"}, "quiet_hours_start"),
    ({"quiet_hours_start": "22:00"}, "quiet_hours_end"),
    ({"quiet_hours_start": "08:00", "quiet_hours_end": "08:00"}, "quiet_hours_end"),
    ({"channels": ["pigeon"]}, "channels"),
    ({"channels": ["email", "email"]}, "channels"),
    ({"channels": ["email", "telegram"]}, "channels"),  # free offers email only (the plan table)
    ({"channels": []}, "channels"),
    ({"quiet_hours_low_priority": "later"}, "quiet_hours_low_priority"),
    ({"flood_limit_per_minute": -1}, "flood_limit_per_minute"),
    ({"flood_limit_per_minute": 1001}, "flood_limit_per_minute"),
])
async def test_bad_preferences_are_refused_naming_the_field_and_change_nothing(
        client: httpx.AsyncClient, sink: Sink, change: dict[str, object], field: str) -> None:
    await signup_verified(client, sink, "bad@example.com")
    me = bearer(await signin(client, "bad@example.com"))
    kept = {"time_zone": "Asia/Tokyo", "quiet_hours_start": None, "quiet_hours_end": None, "channels": ["email"],
            "quiet_hours_low_priority": "hold", "flood_limit_per_minute": 5}
    assert (await client.put(PREFS, json=kept, headers=me)).status_code == 200
    resp = await client.put(PREFS, json={**kept, **change}, headers=me)
    assert resp.status_code == 422, resp.text
    assert field in [e["loc"][-1] for e in resp.json()["detail"]]
    assert (await client.get(PREFS, headers=me)).json() == kept


async def test_a_pro_user_may_choose_the_channels_of_the_pro_plan(client: httpx.AsyncClient, sink: Sink,
                                                                  runtime: Runtime) -> None:
    user_id = await signup_verified(client, sink, "pro@example.com")
    async with runtime.sessions() as s:  # as an administrator's plan change leaves it
        await s.execute(update(UserRow).where(UserRow.id == user_id).values(plan="pro"))
        await s.commit()
    me = bearer(await signin(client, "pro@example.com"))
    body = {"time_zone": "UTC", "channels": ["telegram", "webhook"]}
    resp = await client.put(PREFS, json=body, headers=me)
    assert resp.status_code == 200 and resp.json()["channels"] == ["telegram", "webhook"]
    sms = await client.put(PREFS, json={**body, "channels": ["sms"]}, headers=me)
    assert sms.status_code == 422 and "sms" in sms.text


async def test_sessions_list_marks_this_one_and_signing_another_out_ends_it(client: httpx.AsyncClient,
                                                                            sink: Sink) -> None:
    await signup_verified(client, sink, "two@example.com")
    laptop = await signin(client, "two@example.com")
    phone = await signin(client, "two@example.com")
    listed = await client.get(SESSIONS, headers=bearer(laptop))
    assert listed.status_code == 200
    rows = listed.json()["data"]
    assert len(rows) == 2 and [r["current"] for r in rows] == [True, False]
    phone_id = rows[1]["id"]
    ended = await client.delete(f"{SESSIONS}/{phone_id}", headers=bearer(laptop))
    assert ended.status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=bearer(phone))).status_code == 401
    assert [r["current"] for r in (await client.get(SESSIONS, headers=bearer(laptop))).json()["data"]] == [True]
    assert (await client.delete(f"{SESSIONS}/{phone_id}", headers=bearer(laptop))).status_code == 404


async def test_another_users_session_is_a_404_and_stays_signed_in(client: httpx.AsyncClient, sink: Sink) -> None:
    await signup_verified(client, sink, "a@example.com")
    await signup_verified(client, sink, "b@example.com")
    a, b = await signin(client, "a@example.com"), await signin(client, "b@example.com")
    b_session = (await client.get(SESSIONS, headers=bearer(b))).json()["data"][0]["id"]
    assert (await client.delete(f"{SESSIONS}/{b_session}", headers=bearer(a))).status_code == 404
    assert (await client.get("/api/v1/auth/me", headers=bearer(b))).status_code == 200
    assert b_session not in {r["id"] for r in (await client.get(SESSIONS, headers=bearer(a))).json()["data"]}


async def test_preferences_are_in_the_export_and_go_with_the_account(client: httpx.AsyncClient,
                                                                     sink: Sink) -> None:
    await signup_verified(client, sink, "gone@example.com")
    me = bearer(await signin(client, "gone@example.com"))
    await client.put(PREFS, json={"time_zone": "America/New_York", "channels": ["email"]}, headers=me)
    owned = (await client.get("/api/v1/account/export", headers=me)).json()["owned"]
    assert [r["time_zone"] for r in owned["notification_preferences"]] == ["America/New_York"]
