"""Each accounts setting changes what it says: mail headers and links, SMTP login and STARTTLS, the signing key,
the lifetimes of mailed links."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from marketpulse.accounts.mail import Mailer
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings

from .conftest import STRONG, Sink, bearer, free_port, signin, signup_verified


async def test_mail_from_and_public_url_shape_the_mail(client: httpx.AsyncClient, sink: Sink,
                                                       runtime: Runtime) -> None:
    runtime.settings.mail_from = "Pulse Desk <desk@pulse.example>"
    runtime.settings.public_url = "https://pulse.example/"
    await client.post("/api/v1/auth/signup", json={"email": "u@example.com", "password": STRONG})
    mail = sink.to("u@example.com")[-1]
    assert mail["From"] == "Pulse Desk <desk@pulse.example>"
    body = mail.get_payload(decode=True)
    assert isinstance(body, bytes) and "https://pulse.example/verify-email?token=" in body.decode()


async def test_without_smtp_host_no_mail_goes_out(client: httpx.AsyncClient, sink: Sink, runtime: Runtime) -> None:
    runtime.settings.smtp_host = None
    resp = await client.post("/api/v1/auth/signup", json={"email": "v@example.com", "password": STRONG})
    assert resp.status_code == 201 and sink.mails == []


class _Authenticator:
    def __init__(self) -> None:
        self.logins: list[tuple[str, str]] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == b"smtp-pass")


@pytest.fixture
def auth_smtp() -> Iterator[tuple[Sink, _Authenticator, int]]:
    sink, auth, port = Sink(), _Authenticator(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, authenticator=auth, auth_required=True,
                            auth_require_tls=False)
    controller.start()
    yield sink, auth, port
    controller.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # a local test server
async def test_smtp_login_and_starttls_follow_the_settings(auth_smtp: tuple[Sink, _Authenticator, int],
                                                           tmp_path: Any) -> None:
    sink, auth, port = auth_smtp
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db", smtp_host="127.0.0.1", smtp_port=port,
                        smtp_username="desk", smtp_password=SecretStr("smtp-pass"))
    assert await Mailer(settings).send("w@example.com", "hi", "body", kind="test")
    assert auth.logins == [("desk", "smtp-pass")] and len(sink.mails) == 1

    wrong = settings.model_copy(update={"smtp_password": SecretStr("nope")})
    assert not await Mailer(wrong).send("w@example.com", "hi", "body", kind="test")
    # This server offers no STARTTLS: asking for it means the mail does not go out in the clear.
    tls = settings.model_copy(update={"smtp_starttls": True})
    assert not await Mailer(tls).send("w@example.com", "hi", "body", kind="test")
    assert len(sink.mails) == 1


async def test_the_jwt_secret_key_signs_and_checks_access_tokens(client: httpx.AsyncClient, sink: Sink,
                                                                  runtime: Runtime) -> None:
    await signup_verified(client, sink, "x@example.com")
    tokens = await signin(client, "x@example.com")
    runtime.settings.jwt_secret_key = SecretStr("a-rotated-secret-that-is-long-enough!")
    assert (await client.get("/api/v1/auth/me", headers=bearer(tokens))).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=bearer(await signin(client, "x@example.com")))
            ).status_code == 200


async def test_mailed_links_live_as_long_as_their_settings_say(client: httpx.AsyncClient, sink: Sink,
                                                               runtime: Runtime, clock: FakeClock) -> None:
    runtime.settings.verify_email_ttl_s = runtime.settings.password_reset_ttl_s = 120
    await client.post("/api/v1/auth/signup", json={"email": "y@example.com", "password": STRONG})
    clock.advance(119_000)
    assert (await client.post("/api/v1/auth/verify-email", json={"token": sink.token("y@example.com")})
            ).status_code == 200
    await client.post("/api/v1/auth/request-password-reset", json={"email": "y@example.com"})
    clock.advance(120_000)
    late = await client.post("/api/v1/auth/reset-password",
                             json={"token": sink.token("y@example.com"), "new_password": STRONG + "!"})
    assert late.status_code == 422


@pytest.mark.parametrize(("env", "secret", "refused"), [
    ("production", None, True), ("dev", None, False), ("production", "a-secret-of-our-own-32-bytes-long", False),
])
def test_pulse_api_refuses_the_built_in_jwt_secret_outside_dev(env: str, secret: str | None, refused: bool,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from marketpulse.cli import serve

    settings = Settings(env=env) if secret is None else Settings(env=env, jwt_secret_key=SecretStr(secret))
    if not refused:
        serve.check_jwt_secret(settings)
        return
    with pytest.raises(Exception) as raised:
        serve.check_jwt_secret(settings)
    assert getattr(raised.value, "exit_code", None) == 2
    err = capsys.readouterr().err
    assert "PULSE_JWT_SECRET_KEY" in err and "PULSE_ENV=dev" in err and len(err.strip().splitlines()) == 1
