"""`pulse demo`'s local Telegram and webhook receivers: the seeded admin's destinations point at them, a rule's
notifications arrive there in the providers' real wire formats (signed webhook, Bot API sendMessage), and
/dev/receivers shows what arrived (only in the demo)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from marketpulse.api.app import create_app
from marketpulse.clock import FakeClock
from marketpulse.delivery.demo import DEMO_CHAT_ID, start_demo_receivers
from marketpulse.delivery.devreceivers import DevReceivers
from marketpulse.delivery.tables import DestinationRow
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings

from .helpers import dispatcher, notifications, notify


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:  # the demo's: PULSE_ENV=dev, no Telegram bot configured
    return Settings(database_url=db_url, bus_url="memory://", data_dir=tmp_path / "var",  # type: ignore[arg-type]
                    ingest_api_key="test-key", env="dev", webhook_allow_private=True,
                    jwt_secret_key="test-jwt-secret-of-at-least-32-bytes!")


@pytest.fixture
async def page_client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)),
                                 base_url="http://127.0.0.1") as c:
        yield c


async def test_the_demo_admins_alerts_arrive_at_the_local_receivers_and_show_on_the_dev_page(
        runtime: Runtime, clock: FakeClock, page_client: httpx.AsyncClient) -> None:
    assert (await page_client.get("/dev/receivers")).status_code == 404  # not started: no page
    admin = await runtime.services.accounts.create_user("admin@example.com", None, verified=True)
    receivers = await start_demo_receivers(runtime, admin.id)
    try:
        receivers = await start_demo_receivers(runtime, admin.id)  # started again: the same destinations
        async with runtime.sessions() as s:
            dests = (await s.execute(select(DestinationRow).where(DestinationRow.owner_id == admin.id))).scalars()
            by_channel = {d.channel: d for d in dests}
        assert sorted(by_channel) == ["telegram", "webhook"]
        assert by_channel["telegram"].address == DEMO_CHAT_ID
        assert by_channel["webhook"].address == receivers.hook_url("demo")
        assert (await runtime.services.accounts.find_user("admin@example.com")).plan == "elite"  # type: ignore[union-attr]

        await notify(runtime, admin.id, [by_channel["telegram"].id, by_channel["webhook"].id], "BTCUSDT:1",
                     symbol="BTCUSDT", fields={"price": 100250.5})
        d = dispatcher(runtime)
        assert await d.run_once() == 2
        await d.close()
        assert [(r.status, r.last_error) for r in await notifications(runtime)] == [("sent", None)] * 2
        [tg] = receivers.received("telegram")
        assert (tg.to, tg.title) == (DEMO_CHAT_ID, "<b>alert BTCUSDT:1</b>")
        [hook] = receivers.received("webhook")
        assert (hook.title, hook.signature, hook.repeat) == ("alert BTCUSDT:1", "valid", False)

        page = await page_client.get("/dev/receivers")
        assert page.status_code == 200
        assert page.text.count("alert BTCUSDT:1") == 2 and "signature valid" in page.text
    finally:
        await receivers.stop()


async def test_the_receivers_answer_as_telegram_and_recognise_a_repeated_key(clock: FakeClock) -> None:
    receivers = DevReceivers(bot_token="1:tok", clock=clock)
    await receivers.start()
    try:
        async with httpx.AsyncClient(base_url=receivers.base_url) as http:
            bad = await http.post("/bot1:wrong/sendMessage", json={"chat_id": "1", "text": "x"})
            assert (bad.status_code, bad.json()) == (401, {"ok": False, "error_code": 401,
                                                           "description": "Unauthorized"})
            empty = await http.post("/bot1:tok/sendMessage", json={"text": "x"})
            assert (empty.status_code, empty.json()["description"]) == (400, "Bad Request: chat_id is empty")
            ok = await http.post("/bot1:tok/sendMessage", json={"chat_id": "42", "text": "hi", "parse_mode": "HTML"})
            assert ok.json()["ok"] is True and ok.json()["result"]["chat"]["id"] == 42
            for _ in range(2):
                await http.post("/hooks/me", json={"title": "t"}, headers={"Idempotency-Key": "k1"})
        assert [(r.title, r.repeat, r.signature) for r in receivers.received("webhook")] == [
            ("t", True, "unsigned"), ("t", False, "unsigned")]
    finally:
        await receivers.stop()
