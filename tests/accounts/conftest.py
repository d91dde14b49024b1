"""Accounts under test: the accounts router on the runtime's services, and a real SMTP sink (aiosmtpd) the
service mails to, so tests read the verification and reset links out of the mail that was actually sent."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI

from marketpulse.accounts import admin_views, pages, sso_views, views
from marketpulse.api.errors import install_error_handlers
from marketpulse.backtest import views as backtest_views
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings

STRONG = "Correct-Horse-9-battery"
TOKEN_IN_LINK = re.compile(r"\?token=([A-Za-z0-9_\-%]+)")


@dataclass
class Sink:
    """Collects every mail the SMTP server receives."""

    mails: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.mails.append(message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.mails if m["To"] == address]

    def token(self, address: str) -> str:
        """The token in the newest mail to `address`."""
        body = self.to(address)[-1].get_payload(decode=True)
        assert isinstance(body, bytes)
        found = TOKEN_IN_LINK.search(body.decode())
        assert found, body
        return found.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Sink, int]]:
    sink, port = Sink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


@pytest.fixture
def sink(smtp: tuple[Sink, int]) -> Sink:
    return smtp[0]


@pytest.fixture
def settings(db_url: str, tmp_path: Path, smtp: tuple[Sink, int]) -> Settings:
    return Settings(database_url=db_url, bus_url="memory://", data_dir=tmp_path / "var", ingest_api_key="test-key",
                    smtp_host="127.0.0.1", smtp_port=smtp[1], jwt_secret_key="test-jwt-secret-of-at-least-32-bytes!",
                    auth_email_rate_limit="3/hour")


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    application = FastAPI()
    application.state.runtime = runtime
    install_error_handlers(application)
    for router in (views.router, admin_views.router, pages.router, sso_views.router, backtest_views.router):
        application.include_router(router)  # backtest jobs: the per-user rows these tests own, export and erase
    return application


@pytest.fixture
async def client(app: FastAPI, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c
    await runtime.services.backtests.wait()  # no job outlives its test's database


async def signup_verified(client: httpx.AsyncClient, sink: Sink, email: str, password: str = STRONG) -> str:
    """Sign up and follow the mailed link; the new user's id."""
    resp = await client.post("/api/v1/auth/signup", json={"email": email, "password": password})
    assert resp.status_code == 201, resp.text
    verified = await client.post("/api/v1/auth/verify-email", json={"token": sink.token(email)})
    assert verified.status_code == 200, verified.text
    return str(resp.json()["id"])


async def signin(client: httpx.AsyncClient, email: str, password: str = STRONG) -> dict[str, Any]:
    resp = await client.post("/api/v1/auth/signin", json={"email": email, "password": password})
    assert resp.status_code == 200, resp.text
    client.cookies.clear()  # tests choose explicitly between the Bearer header and the cookies
    return dict(resp.json())


async def signed_in_admin(client: httpx.AsyncClient, runtime: Runtime, email: str = "root@example.com") -> str:
    """An administrator (made as `pulse admin create-user` makes one); the access token's header value."""
    from marketpulse.accounts.core import Role

    await runtime.services.accounts.create_user(email, STRONG, role=Role.ADMIN, verified=True)
    return f"Bearer {(await signin(client, email))['access_token']}"


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}
