"""The channels that aren't plain HTTPS JSON: mail over SMTP with a fallback relay, web push (VAPID, encrypted)
against a local push service, in-app over the bus, and Apprise URLs."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fakes.providers import FakeProviders
from marketpulse.bus import Message as BusMessage
from marketpulse.bus import topics
from marketpulse.clock import FakeClock
from marketpulse.delivery.outbox import idempotency_key
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings

from .helpers import add_destination, dispatcher, notifications, notify


class Sink:
    def __init__(self) -> None:
        self.mails: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.mails.append(message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def relay() -> Iterator[tuple[Sink, int]]:
    sink, port = Sink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


VAPID_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def settings(settings: Settings, relay: tuple[Sink, int]) -> Settings:
    settings.smtp_host, settings.smtp_port = "127.0.0.1", free_port()  # nothing listens: the first relay is down
    settings.delivery_smtp_fallback_host, settings.delivery_smtp_fallback_port = "127.0.0.1", relay[1]
    settings.delivery_breaker_failures = 1
    raw = VAPID_KEY.private_numbers().private_value.to_bytes(32, "big")
    from pydantic import SecretStr

    settings.vapid_private_key = SecretStr(b64url(raw))
    settings.vapid_subject = "mailto:ops@pulse.example"
    return settings


async def test_mail_goes_through_the_fallback_relay_while_the_first_is_down(
        runtime: Runtime, relay: tuple[Sink, int], clock: FakeClock) -> None:
    await add_destination(runtime, "m1", "alice", channel="email", address="alice@example.com")
    await notify(runtime, "alice", ["m1"], "e1", symbol="BTCUSDT", fields={"price": 100_000})
    d = dispatcher(runtime)
    await d.run_once()  # the first relay refuses the connection: retry in 1 s, its circuit (threshold 1) opens
    [row] = await notifications(runtime)
    assert (row.status, row.last_error) == ("failed", "smtp: SMTP relay unreachable: SMTPConnectError")
    clock.set(row.next_attempt_at_ms)
    await d.run_once()
    await d.close()
    [row] = await notifications(runtime)
    assert (row.status, row.provider) == ("sent", "smtp_fallback")
    [mail] = relay[0].mails
    assert (mail["To"], mail["Subject"]) == ("alice@example.com", "alert e1")
    assert mail["Message-ID"] == f"<{idempotency_key('rule-1', 'e1', 'm1')}@marketpulse>"
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in mail.walk()  # type: ignore[union-attr]
             if not p.is_multipart()}
    assert "price: 100,000.00" in parts["text/plain"]
    assert "<td>100,000.00</td>" in parts["text/html"] and "?symbol=BTCUSDT" in parts["text/html"]


async def test_web_push_reaches_the_push_service_encrypted_with_vapid(runtime: Runtime, fake: FakeProviders) -> None:
    import http_ece
    import jwt

    receiver = ec.generate_private_key(ec.SECP256R1())
    public = receiver.public_key().public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint)
    auth = os.urandom(16)
    subscription = {"endpoint": fake.url("/push/1"), "keys": {"p256dh": b64url(public), "auth": b64url(auth)}}
    import json

    await add_destination(runtime, "p1", "alice", channel="push", address=json.dumps(subscription))
    await notify(runtime, "alice", ["p1"], "e1", symbol="ETHUSDT")
    d = dispatcher(runtime)
    await d.run_once()
    await d.close()
    [row] = await notifications(runtime)
    assert row.status == "sent", row.last_error
    [got] = fake.of("push")
    assert got.headers["Content-Encoding"] == "aes128gcm" and got.headers["TTL"] == "3600"
    scheme, _, params = got.headers["Authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(p.split("=", 1) for p in params.split(","))
    vapid_public = serialization.load_der_public_key(VAPID_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    claims = jwt.decode(fields["t"].strip(), vapid_public, algorithms=["ES256"],  # type: ignore[arg-type]
                        audience=None, options={"verify_aud": False})
    assert claims["sub"] == "mailto:ops@pulse.example" and claims["aud"] == fake.base
    plain = http_ece.decrypt(got.body, private_key=receiver, auth_secret=auth, version="aes128gcm")
    assert json.loads(plain)["title"] == "alert e1" and json.loads(plain)["symbol"] == "ETHUSDT"


async def test_in_app_notifications_go_to_the_owner_on_the_bus(runtime: Runtime) -> None:
    got: list[topics.UserNotification] = []

    async def seen(msg: BusMessage[topics.UserNotification]) -> None:
        got.append(msg.data)

    await runtime.bus.subscribe(topics.NOTIFICATIONS_USER, "test", seen)
    await add_destination(runtime, "a1", "alice", channel="in_app", address="alice")
    await notify(runtime, "alice", ["a1"], "e1", symbol="SOLUSDT")
    d = dispatcher(runtime)
    await d.run_once()
    await d.close()
    await runtime.bus.drained()  # type: ignore[attr-defined]
    [n] = got
    assert (n.owner_id, n.title, n.symbol, n.key) == ("alice", "alert e1", "SOLUSDT",
                                                      idempotency_key("rule-1", "e1", "a1"))


async def test_an_apprise_url_reaches_its_service(runtime: Runtime, fake: FakeProviders) -> None:
    await add_destination(runtime, "ap", "alice", channel="apprise", address=f"json://127.0.0.1:{fake.port}/hook/ap")
    await notify(runtime, "alice", ["ap"], "e1")
    d = dispatcher(runtime)
    await d.run_once()
    await d.close()
    [row] = await notifications(runtime)
    assert row.status == "sent", row.last_error
    [got] = fake.of("webhook")
    assert got.json()["title"] == "alert e1" and "crossed" in got.json()["message"]
