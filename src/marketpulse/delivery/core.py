"""Delivery's vocabulary (pure): channels, statuses, and what a provider's answer means for a notification."""

from __future__ import annotations

from dataclasses import dataclass

# The channels a destination can be on. Plans gate them (`accounts.plans.Plan.alert_channels`); the ones the plan
# table doesn't list ride on a listed one (`PLAN_GATE`) or are open to every plan (None).
CHANNELS = ("email", "telegram", "discord", "slack", "sms", "webhook", "push", "in_app", "apprise")
PLAN_GATE: dict[str, str | None] = {"slack": "webhook", "apprise": "webhook", "push": None, "in_app": None}

QUEUED, SENT, FAILED, DEAD, SKIPPED = "queued", "sent", "failed", "dead", "skipped"
STATUSES = (QUEUED, SENT, FAILED, DEAD, SKIPPED)
PENDING_STATUSES = (QUEUED, FAILED)  # still to be sent


def channel_allowed(channel: str, plan_channels: tuple[str, ...]) -> bool:
    gate = PLAN_GATE.get(channel, channel)
    return gate is None or gate in plan_channels


class DeliveryError(Exception):
    """A provider refused or failed a send; `permanent` ones are never retried (invalid chat id, unsubscribed
    number, a 4xx other than 429), the others are retried after `retry_after_s` when the provider said so."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after_s: float | None = None) -> None:
        super().__init__(message[:480])
        self.permanent = permanent
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Outcome:
    """What became of one attempt (the dispatcher writes it to the notification)."""

    status: str  # sent | failed (retry at next_attempt_at_ms) | dead
    provider: str | None = None
    error: str | None = None
    next_attempt_at_ms: int | None = None
    permanent: bool = False


def http_error(status: int, body: str, retry_after_s: float | None = None) -> DeliveryError:
    """The one rule for HTTP answers: 429 and 5xx are retried (honouring Retry-After), other 4xx are permanent."""
    retryable = status == 429 or status >= 500 or status == 408
    return DeliveryError(f"HTTP {status}: {body[:300]}", permanent=not retryable, retry_after_s=retry_after_s)
