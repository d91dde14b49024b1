"""What every provider adapter receives: the delivery, and a context holding the shared HTTP client, settings and
bus."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from marketpulse.delivery.core import DeliveryError, http_error
from marketpulse.delivery.templates import Rendered, render

if TYPE_CHECKING:
    from marketpulse.bus import EventBus
    from marketpulse.settings import Settings


@dataclass(frozen=True)
class Delivery:
    notification_id: int
    idempotency_key: str  # the same for every attempt: receivers recognise a redelivery by it
    owner_id: str
    channel: str
    address: str
    secret: str | None  # the webhook signing secret
    message: dict[str, Any]
    created_at_ms: int = 0

    def rendered(self, public_url: str) -> Rendered:
        return render(self.message, public_url)


@dataclass
class Context:
    settings: Settings
    http: httpx.AsyncClient
    bus: EventBus | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    name: str

    async def send(self, delivery: Delivery, ctx: Context, now_ms: int) -> None: ...


def retry_after_header(response: httpx.Response) -> float | None:
    """Seconds from `Retry-After` (delta-seconds; an HTTP date is rare from these providers and ignored)."""
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def raise_for_answer(response: httpx.Response, retry_after_s: float | None = None) -> None:
    if response.is_success:
        return
    raise http_error(response.status_code, response.text, retry_after_s if retry_after_s is not None
                     else retry_after_header(response))


async def post(ctx: Context, url: str, **kwargs: Any) -> httpx.Response:
    """POST with the delivery timeout; a timeout or a refused connection is a retryable failure."""
    try:
        return await ctx.http.post(url, **kwargs)
    except httpx.TimeoutException:
        raise DeliveryError(f"timed out after {ctx.settings.delivery_timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
