"""The bus contract shared by the in-process and Redis Streams implementations.

Semantics (the contract tests hold both implementations to them):
- `publish(topic, payload)` encodes the payload (a `Topic[T]`'s `T`, see `topics.py`) and returns the message id.
- `subscribe(topic, group, handler)` starts delivering messages published *after* the call to `handler`, each
  decoded once, inside the bus, into a `Message[T]` (`.data` is the typed payload).
  Each group receives every message once; consumers in the same group share the messages between them.
- At-least-once: a message is acknowledged only after `handler` returns. If the handler raises, the message
  stays pending and is delivered again (Redis: claimed by another consumer after `claim_idle_ms`).

Clarifications both implementations keep (tests/bus/test_bus_contract.py):
- `publish` raises TypeError for a payload msgspec cannot encode; every delivery decodes its own copy.
- Bad data (the rule in `topics.py`): a message that cannot be decoded is moved to the dead letters with the
  reason and counted (by each group that reads it), never handed to a handler; a batch topic's invalid rows are
  dropped and counted.
- Handlers must be idempotent: a message can arrive more than once (a retry, or a takeover after a crash).
  `Message.deliveries` is 1 on the first delivery and counts up on each redelivery; `Message.id` stays the same,
  so an effect keyed by it (or by an id inside the payload) is done once.
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
from typing import Any, Generic, TypeVar

import structlog

from marketpulse.bus import metrics
from marketpulse.bus.topics import Topic, UndecodableMessage

T = TypeVar("T")

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Message(Generic[T]):
    id: str
    topic: str
    data: T
    deliveries: int = 1


Handler = Callable[[Message[T]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message taken out of circulation: its raw payload (it may not decode) and why."""

    id: str
    topic: str
    payload: bytes
    deliveries: int
    reason: str
    group: str


def decode_for_delivery(topic: Topic[T], raw: bytes, entry_id: str, deliveries: int) -> Message[T]:
    """The one place a payload is decoded for handlers; UndecodableMessage when it can't be (caller dead-letters).

    Rows a batch dropped are counted here, once per delivery attempt of each consumer group, like the decode."""
    decoded = topic.decode(raw)
    if decoded.rejected:
        metrics.REJECTED_ROWS.labels(topic.name).inc(decoded.rejected)
        log.warning("bus rows rejected", topic=topic.name, id=entry_id, rejected=decoded.rejected)
    return Message(entry_id, topic.name, decoded.payload, deliveries)


def count_dead_letter(topic: str, reason: str | UndecodableMessage) -> None:
    metrics.DEAD_LETTERS.labels(topic, reason.kind if isinstance(reason, UndecodableMessage) else reason).inc()


@dataclass(frozen=True, slots=True)
class GroupLag:
    """A consumer group's backlog on a topic (for /metrics)."""

    topic: str
    group: str
    lag: int | None  # published, not yet delivered to the group (None: the bus can't tell)
    pending: int  # delivered, not yet acknowledged


class Subscription(ABC):
    @abstractmethod
    async def close(self) -> None:
        """Stop delivering; in-flight handling finishes first."""


class EventBus(ABC):
    @abstractmethod
    async def publish(self, topic: Topic[T], payload: T) -> str: ...

    @abstractmethod
    async def subscribe(
        self, topic: Topic[T], group: str, handler: Handler[T], *, consumer: str | None = None,
        ephemeral: bool = False, takeover: bool = False,
    ) -> Subscription:
        """`ephemeral`: the group is this subscription's alone (a per-process group); closing deletes the group,
        and a crashed process's group is reaped by the next process that subscribes (Redis: an idle-time rule).

        `takeover`: the group has one consumer at a time (a lease holder's, see `coordination.lease`); before
        anything new, this one takes every entry still pending in the group (the previous holder's), whatever its
        idle time, so a successor continues in order where a dead holder stopped."""

    @abstractmethod
    async def dead_letters(self, topic: Topic[Any], count: int = 100) -> list[DeadLetter]:
        """The oldest `count` dead letters of `topic`."""

    @abstractmethod
    async def first_time(self, key: str, ttl_ms: int) -> bool:
        """True for the first caller with `key` within `ttl_ms` (across processes sharing the bus), else False.

        For effects that must happen once although their message may be delivered twice (the realtime push)."""

    @abstractmethod
    async def forget_key(self, key: str) -> None:
        """Undo `first_time(key)` (the effect failed, so a redelivery may try again)."""

    async def group_lags(self) -> list[GroupLag]:
        """Every consumer group's backlog, whichever process consumes it."""
        return []

    @abstractmethod
    async def ping(self) -> bool:
        """True when the bus can take messages (used by /health/ready)."""

    @abstractmethod
    async def close(self) -> None: ...
