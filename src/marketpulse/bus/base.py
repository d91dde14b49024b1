"""The bus contract shared by the in-process and Redis Streams implementations.

Semantics (the contract tests hold both implementations to them):
- `publish(topic, data)` appends a message and returns its id.
- `subscribe(topic, group, handler)` starts delivering messages published *after* the call to `handler`.
  Each group receives every message once; consumers in the same group share the messages between them.
- At-least-once: a message is acknowledged only after `handler` returns. If the handler raises, the message
  stays pending and is delivered again (Redis: claimed by another consumer after `claim_idle_ms`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    topic: str
    data: dict[str, Any]
    deliveries: int = 1


Handler = Callable[[Message], Awaitable[None]]


class Subscription(ABC):
    @abstractmethod
    async def close(self) -> None:
        """Stop delivering; in-flight handling finishes first."""


class EventBus(ABC):
    @abstractmethod
    async def publish(self, topic: str, data: dict[str, Any]) -> str: ...

    @abstractmethod
    async def subscribe(
        self, topic: str, group: str, handler: Handler, *, consumer: str | None = None
    ) -> Subscription: ...

    @abstractmethod
    async def ping(self) -> bool:
        """True when the bus can take messages (used by /health/ready)."""

    @abstractmethod
    async def close(self) -> None: ...
