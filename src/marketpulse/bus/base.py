"""The bus contract shared by the in-process and Redis Streams implementations.

Semantics (the contract tests hold both implementations to them):
- `publish(topic, data)` appends a message and returns its id.
- `subscribe(topic, group, handler)` starts delivering messages published *after* the call to `handler`.
  Each group receives every message once; consumers in the same group share the messages between them.
- At-least-once: a message is acknowledged only after `handler` returns. If the handler raises, the message
  stays pending and is delivered again (Redis: claimed by another consumer after `claim_idle_ms`).

Clarifications both implementations keep (tests/bus/test_bus_contract.py):
- `data` must be JSON-serializable (orjson): `publish` raises TypeError otherwise; every delivery gets its own copy.
- Handlers must be idempotent: a message can arrive more than once (a retry, or a takeover after a crash).
  `Message.deliveries` is 1 on the first delivery and counts up on each redelivery.
- Order is per topic for one consumer; redelivered messages arrive out of order.
- A message delivered more than `max_deliveries` times (default 5) is a poison message: logged, moved to the
  implementation's dead letters (`dead_letters(topic)`) and acknowledged, so it can't block a group forever.
- A group outlives its consumers: a consumer joining an existing group continues from the group's position.
- Each implementation's subscriptions also offer `abort()`: stop as a crashed process would, leaving whatever
  they hold unacknowledged for the group's other consumers (used by the contract tests).
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
        self, topic: str, group: str, handler: Handler, *, consumer: str | None = None, ephemeral: bool = False
    ) -> Subscription:
        """`ephemeral`: the group is this subscription's alone (a per-process group); closing deletes the group,
        so restarts don't leave abandoned groups behind (a crashed process still does: nothing runs to delete it)."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when the bus can take messages (used by /health/ready)."""

    @abstractmethod
    async def close(self) -> None: ...
