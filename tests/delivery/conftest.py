"""Delivery under test: fake providers on a local port and settings pointing every channel at them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fakes.providers import TELEGRAM_TOKEN, TWILIO_SID, TWILIO_TOKEN, VONAGE_KEY, VONAGE_SECRET, FakeProviders
from marketpulse.settings import Settings


@pytest.fixture
async def fake() -> AsyncIterator[FakeProviders]:
    async with FakeProviders.start() as providers:
        yield providers


def provider_settings(fake: FakeProviders) -> dict[str, object]:
    return dict(
        webhook_allow_private=True, telegram_api_base=fake.base, telegram_bot_token=TELEGRAM_TOKEN,
        twilio_api_base=fake.base, twilio_account_sid=TWILIO_SID, twilio_auth_token=TWILIO_TOKEN,
        twilio_from="+15005550006", vonage_api_base=fake.base, vonage_api_key=VONAGE_KEY,
        vonage_api_secret=VONAGE_SECRET, vonage_from="marketpulse", delivery_timeout_s=1.5,
        delivery_breaker_failures=3, delivery_breaker_open_s=30, public_url="https://pulse.example",
        jwt_secret_key="test-jwt-secret-of-at-least-32-bytes!",
    )


@pytest.fixture
def settings(db_url: str, tmp_path: Path, fake: FakeProviders) -> Settings:
    return Settings(database_url=db_url, bus_url="memory://", data_dir=tmp_path / "var",  # type: ignore[arg-type]
                    ingest_api_key="test-key", **provider_settings(fake))
