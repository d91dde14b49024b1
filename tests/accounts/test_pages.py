"""The pages mailed links open, and `pulse demo`'s mailbox at /dev/mail with its seeded administrator."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from marketpulse.accounts.demo import DEMO_ADMIN, start_demo_accounts
from marketpulse.accounts.service import AccountsService
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings

from .conftest import STRONG, Sink, bearer, signin

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def link_path(sink: Sink, address: str, page: str) -> str:
    body = sink.to(address)[-1].get_payload(decode=True)
    assert isinstance(body, bytes)
    found = re.search(rf"https?://[^/\s]+(/{page}\?token=\S+)", body.decode())
    assert found, body
    return found.group(1)


async def test_the_verification_link_opens_a_page_whose_button_confirms(client: httpx.AsyncClient,
                                                                        sink: Sink) -> None:
    await client.post("/api/v1/auth/signup", json={"email": "page@example.com", "password": STRONG})
    path = link_path(sink, "page@example.com", "verify-email")
    token = path.split("token=")[1]
    for _ in range(2):  # opening the link (a mail scanner, a second click) spends nothing
        page = await client.get(path)
        assert page.status_code == 200 and 'method=post action=/verify-email' in page.text
    confirmed = await client.post("/verify-email", content=f"token={token}", headers=FORM)
    assert confirmed.status_code == 200 and "page@example.com is confirmed" in confirmed.text
    again = await client.post("/verify-email", content=f"token={token}", headers=FORM)
    assert again.status_code == 400 and "already used" in again.text
    await signin(client, "page@example.com")


async def test_the_reset_link_opens_a_form_that_sets_the_password(client: httpx.AsyncClient, sink: Sink) -> None:
    await client.post("/api/v1/auth/signup", json={"email": "forgot@example.com", "password": STRONG})
    await client.post("/verify-email", content=f"token={sink.token('forgot@example.com')}", headers=FORM)
    await client.post("/api/v1/auth/request-password-reset", json={"email": "forgot@example.com"})
    path = link_path(sink, "forgot@example.com", "reset-password")
    token = path.split("token=")[1]
    assert 'name=new_password' in (await client.get(path)).text
    weak = await client.post("/reset-password", content=f"token={token}&new_password=short", headers=FORM)
    assert weak.status_code == 422 and "at least 12 characters" in weak.text
    ok = await client.post("/reset-password", content=f"token={token}&new_password=New-Password-42%21",
                           headers=FORM)
    assert ok.status_code == 200 and "Password changed" in ok.text
    await signin(client, "forgot@example.com", "New-Password-42!")


@pytest.fixture
async def demo_accounts(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[Runtime, AccountsService]]:
    """A runtime set up as `pulse demo` sets it up: PULSE_ENV=dev, no SMTP server configured."""
    runtime = Runtime.open(Settings(database_url=db_url, env="dev", data_dir=tmp_path / "var"))
    try:
        yield runtime, runtime.services.accounts
    finally:
        await runtime.close()


async def test_the_demo_mailbox_shows_sent_mail_and_the_seeded_admin_signs_in(
    demo_accounts: tuple[Runtime, AccountsService],
) -> None:
    from fastapi import FastAPI

    from marketpulse.accounts import pages, views
    from marketpulse.api.errors import install_error_handlers

    runtime, accounts = demo_accounts
    password = await start_demo_accounts(accounts, "127.0.0.1", 8123)
    assert accounts.dev_mailbox is not None and runtime.settings.smtp_port == accounts.dev_mailbox.port
    app = FastAPI()
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(views.router)
    app.include_router(pages.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert "No mail yet" in (await client.get("/dev/mail")).text
        await client.post("/api/v1/auth/signup", json={"email": "newbie@example.com", "password": STRONG})
        mailbox = (await client.get("/dev/mail")).text
        assert "Confirm your marketpulse address" in mailbox and "to newbie@example.com" in mailbox
        assert re.search(r'<a href="http://127\.0\.0\.1:8123/verify-email\?token=[\w-]+">', mailbox)

        me = await client.get("/api/v1/auth/me", headers=bearer(await signin(client, DEMO_ADMIN, password)))
        assert me.json()["role"] == "admin"
        fresh = await start_demo_accounts(accounts, "127.0.0.1", 8123)  # a restarted demo: a new password
        assert fresh != password
        assert (await client.post("/api/v1/auth/signin", json={"email": DEMO_ADMIN, "password": password})
                ).status_code == 401
        accounts.signin_guard.clock = FakeClock(runtime.clock.now_ms() + 1000)  # past the failure's delay
        await signin(client, DEMO_ADMIN, fresh)

        runtime.settings.env = "production"
        assert (await client.get("/dev/mail")).status_code == 404
