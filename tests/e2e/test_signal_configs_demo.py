"""Issue 9's "Done when", in a real `pulse demo` process over HTTP only: the demo's admin creates a UT Bot config
computed live, a new user (signed up, verified through the demo mailbox) subscribes with an in-app channel, and
both a signal the platform computes from the replayed market and a TradingView payload posted the README's way
reach the user's in-app notifications; the config's Pine script carries its webhook URL."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.support import Processes, demo_admin_sign_in, eventually, free_port, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
PASSWORD = "Correct-Horse-9-battery"
VERIFY = re.compile(r"/verify-email\?token=([A-Za-z0-9_\-.~%]+)")


async def verified_user(http: httpx.AsyncClient, email: str) -> None:
    """Sign up, follow the link the demo mailbox shows, sign in (the client sends the token from then on)."""
    assert (await http.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD})).status_code in (
        200, 201, 202)

    async def link() -> str | None:
        page = html.unescape((await http.get("/dev/mail")).text)
        found = VERIFY.search(page[page.find(email):]) if email in page else None
        return found.group(1) if found else None

    token = await eventually(link, deadline_s=30, what="the verification mail in /dev/mail")
    assert (await http.post("/api/v1/auth/verify-email", json={"token": token})).status_code == 200
    await sign_in(http, email, PASSWORD)


async def test_a_computed_and_a_posted_signal_reach_a_subscriber_in_the_demo(processes: Processes,
                                                                             tmp_path: Path) -> None:
    processes.env.update(PULSE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
                         PULSE_DATA_DIR=str(tmp_path / "data"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    demo = processes.start("demo", "demo", "--port", str(port))
    alive = processes.check_alive
    async with httpx.AsyncClient(base_url=base, timeout=30) as admin, \
            httpx.AsyncClient(base_url=base, timeout=30) as user:
        async def ready() -> bool:
            return (await admin.get("/health/ready")).status_code == 200

        await eventually(ready, deadline_s=120, what="/health/ready 200", check=alive)
        email, password = await eventually(lambda: "demo admin:" in demo.log_text() and demo_admin_sign_in(
            demo.log_text()), deadline_s=60, what="the demo admin's credentials", check=alive)
        await sign_in(admin, email, password)

        # The admin: a UT Bot on BTCUSDT 1m that the platform computes (sensitive, so the replay crosses it soon).
        made = await admin.post("/api/v1/admin/signal-configs", json={
            "symbol": "BTCUSDT", "timeframe": "1m", "strategy": "ut_bot", "key_value": 0.3, "atr_period": 3,
            "computed": True})
        assert made.status_code == 201, made.text
        config: dict[str, Any] = made.json()
        assert config["webhook_url"] in config["pine"] and "//@version=5" in config["pine"]

        # The user: signs up, adds an in-app channel, subscribes.
        await verified_user(user, "trader@example.com")
        channel = await user.post("/api/v1/account/destinations", json={"channel": "in_app"})
        assert channel.status_code == 201, channel.text
        sub = await user.post("/api/v1/signals/subscriptions",
                              json={"config_id": config["id"], "channels": [channel.json()["id"]]})
        assert sub.status_code == 201, sub.text

        # TradingView's request, as the README's curl sends it (the URL's host is PULSE_PUBLIC_URL's; same path here).
        path = "/webhook/tradingview/" + config["token"]
        now_ms = int(time.time() * 1000)
        posted = await user.post(path, headers={"Content-Type": "text/plain"}, content=(
            '{"symbol": "BINANCE:BTCUSDT.P", "timeframe": "1", "action": "sell", "price": 61000, '
            f'"time": {now_ms - now_ms % 60_000}}}').encode())
        assert posted.status_code == 200 and posted.json()["status"] == "accepted", posted.text

        async def delivered() -> dict[str, set[str]] | None:
            history = (await user.get("/api/v1/signals/history", params={"config_id": config["id"]})).json()
            rows = history if isinstance(history, list) else history["data"]
            answer = (await user.get("/api/v1/account/notifications", params={"channel": "in_app"})).json()
            notes = answer["notifications"] if "notifications" in answer else answer["data"]
            sent = {n["event_key"] for n in notes if n["status"] == "sent"}
            by_source: dict[str, set[str]] = {}
            for row in rows:
                if f"signal:{row['id']}" in sent:
                    by_source.setdefault(row["source"], set()).add(row["id"])
            return by_source if {"computed", "tradingview"} <= set(by_source) else None

        found = await eventually(delivered, deadline_s=150, every_s=1.0, check=alive,
                                 what="a computed and a posted signal in the user's in-app notifications")
        assert len(found["tradingview"]) == 1

        stats = (await admin.get(f"/api/v1/admin/signal-configs/{config['id']}/stats")).json()
        assert stats["signals_received"] >= 2 and stats["users_notified"] >= 2, stats
        assert (await user.get("/signals")).status_code == 200
    demo.stop()
    assert demo.popen.returncode == 0, demo.log_text()[-3000:]
