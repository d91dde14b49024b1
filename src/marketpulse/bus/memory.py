"""In-process bus on asyncio queues: one queue per (topic, group), shared by that group's consumers.

It keeps the Redis Streams bus's semantics so code tested on it behaves the same in production:
- payloads are encoded to JSON at `publish` (what can't be encoded fails there, as with Redis) and every delivery
  decodes its own typed copy, with the same bad-data rule (dead letters, dropped rows) as Redis;
- a handler that raises gets the message again after `redelivery_delay_s`, with `deliveries` + 1; above
  `max_deliveries` it is logged and moved to `dead_letters(topic)` instead of looping;
- a consumer cancelled mid-handler (a "crash", see `abort`) puts its message back for the group's other consumers;
- a group outlives its consumers (like a Redis consumer group) and holds at most `maxsize` messages: when full,
  the oldest is dropped with a warning, mirroring the stream's MAXLEN trimming instead of blocking publishers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import structlog

from marketpulse.bus.base import (
    DeadLetter,
    EventBus,
    GroupLag,
    Handler,
    Subscription,
    count_dead_letter,
    decode_for_delivery,
)
from marketpulse.bus.topics import Topic, UndecodableMessage

T = TypeVar("T")
SEEN_KEYS_MAX = 100_000  # first_time keys remembered at most (an in-process bus: one process's recent pushes)

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Envelope:
    id: str
    payload: bytes
    deliveries: int = 1

    def redelivery(self) -> _Envelope:
        return replace(self, deliveries=self.deliveries + 1)


class _Group:
    def __init__(self, topic: Topic[Any], name: str, maxsize: int) -> None:
        self.topic, self.name = topic, name
        self.queue: asyncio.Queue[_Envelope] = asyncio.Queue(maxsize)
        self.dropped = 0
        # Messages queued, being handled or waiting for their redelivery; `idle` is set while there are none.
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def hold(self, delta: int) -> None:
        self.in_flight += delta
        if self.in_flight:
            self.idle.clear()
        else:
            self.idle.set()

    def put(self, envelope: _Envelope, *, held: bool = False) -> None:
        """Queue `envelope`; `held`: it was counted in flight already (a redelivery scheduled earlier)."""
        if not held:
            self.hold(1)
        if self.queue.full():
            self.queue.get_nowait()
            self.hold(-1)
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning("bus group full, dropping oldest", topic=self.topic.name, group=self.name,
                            dropped=self.dropped)
        self.queue.put_nowait(envelope)


class _MemoryConsumer(Subscription):
    def __init__(self, bus: MemoryBus, group: _Group, handler: Handler[Any], *, ephemeral: bool = False) -> None:
        self._bus, self._group, self._handler, self._ephemeral = bus, group, handler, ephemeral
        self._stopping = False
        self._busy = False
        self._task = asyncio.create_task(self._run(), name=f"bus:{group.topic.name}:{group.name}")

    async def _run(self) -> None:
        while not self._stopping:
            envelope = await self._group.queue.get()
            self._busy = True
            try:
                await self._deliver(envelope)
            except asyncio.CancelledError:
                self._group.put(envelope.redelivery())  # never acknowledged: another consumer of the group gets it
                raise
            finally:
                self._busy = False
                self._group.hold(-1)

    async def _deliver(self, envelope: _Envelope) -> None:
        topic, group = self._group.topic, self._group.name
        if envelope.deliveries > self._bus.max_deliveries:
            self._bus.dead_letter(topic, group, envelope, f"delivered more than {self._bus.max_deliveries} times")
            count_dead_letter(topic.name, "max_deliveries")
            return
        try:
            message = decode_for_delivery(topic, envelope.payload, envelope.id, envelope.deliveries)
        except UndecodableMessage as exc:
            self._bus.dead_letter(topic, group, envelope, str(exc))
            count_dead_letter(topic.name, exc)
            return
        try:
            await self._handler(message)
        except Exception:
            log.exception(
                "bus handler failed; will redeliver",
                topic=topic.name,
                group=group,
                id=envelope.id,
                deliveries=envelope.deliveries,
            )
            # Later, not now: the consumer goes on with other messages instead of spinning on a failing one.
            self._group.hold(1)
            asyncio.get_running_loop().call_later(self._bus.redelivery_delay_s,
                                                  lambda: self._group.put(envelope.redelivery(), held=True))

    async def close(self) -> None:
        """Stop: a handler that is running finishes; a consumer waiting for a message stops at once."""
        self._stopping = True
        if not self._busy:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._bus.forget(self)
        if self._ephemeral:
            self._bus.drop_group(self._group)

    @property
    def group(self) -> _Group:
        return self._group

    @property
    def busy(self) -> bool:
        """Handling a message now (delivered, not yet acknowledged)."""
        return self._busy

    def abort(self) -> None:
        """Die like a crashed process: a message being handled goes back to the group, unacknowledged."""
        self._stopping = True
        self._task.cancel()
        self._bus.forget(self)


class MemoryBus(EventBus):
    def __init__(self, maxsize: int = 100_000, *, max_deliveries: int = 5, redelivery_delay_s: float = 0.05) -> None:
        self._maxsize = maxsize
        self.max_deliveries = max_deliveries
        self.redelivery_delay_s = redelivery_delay_s
        self._groups: dict[str, dict[str, _Group]] = defaultdict(dict)
        self._subscriptions: set[_MemoryConsumer] = set()
        self._dead: dict[str, list[DeadLetter]] = defaultdict(list)
        self._ids = itertools.count(1)
        self._seen: OrderedDict[str, float] = OrderedDict()  # first_time keys -> expiry (loop time)

    async def publish(self, topic: Topic[T], payload: T) -> str:
        envelope = _Envelope(f"{next(self._ids)}-0", topic.encode(payload))
        for group in self._groups.get(topic.name, {}).values():
            group.put(envelope)
        return envelope.id

    async def subscribe(
        self, topic: Topic[T], group: str, handler: Handler[T], *, consumer: str | None = None,
        ephemeral: bool = False, takeover: bool = False,
    ) -> Subscription:
        # `consumer` only names consumers in Redis; in process, every subscription is its own consumer.
        # `takeover` needs nothing here: a closed consumer hands back what it held to its group.
        groups = self._groups[topic.name]
        if group not in groups:
            groups[group] = _Group(topic, group, self._maxsize)
        sub = _MemoryConsumer(self, groups[group], handler, ephemeral=ephemeral)
        self._subscriptions.add(sub)
        return sub

    def forget(self, sub: _MemoryConsumer) -> None:
        self._subscriptions.discard(sub)

    def drop_group(self, group: _Group) -> None:
        """Publishing stops queueing for the group (an ephemeral group, closed)."""
        if self._groups[group.topic.name].get(group.name) is group:
            del self._groups[group.topic.name][group.name]

    def dead_letter(self, topic: Topic[Any], group: str, envelope: _Envelope, reason: str) -> None:
        log.error("message moved to dead letters", topic=topic.name, group=group, id=envelope.id,
                  deliveries=envelope.deliveries, reason=reason)
        self._dead[topic.name].append(
            DeadLetter(envelope.id, topic.name, envelope.payload, envelope.deliveries, reason, group)
        )

    async def dead_letters(self, topic: Topic[Any], count: int = 100) -> list[DeadLetter]:
        """The oldest `count` dead letters of `topic`, as they were last delivered."""
        return self._dead[topic.name][:count]

    async def first_time(self, key: str, ttl_ms: int) -> bool:
        now = asyncio.get_running_loop().time()
        # Oldest first: with one ttl per caller (the bridge's), expiries are in insertion order; the size bound
        # keeps memory flat whatever the ttls.
        while self._seen and (next(iter(self._seen.values())) <= now or len(self._seen) >= SEEN_KEYS_MAX):
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now + ttl_ms / 1000
        return True

    async def forget_key(self, key: str) -> None:
        self._seen.pop(key, None)

    async def group_lags(self) -> list[GroupLag]:
        in_flight: dict[int, int] = defaultdict(int)
        for sub in self._subscriptions:
            in_flight[id(sub.group)] += sub.busy
        return [GroupLag(g.topic.name, g.name, g.queue.qsize(), in_flight[id(g)])
                for groups in self._groups.values() for g in groups.values()]

    async def ping(self) -> bool:
        return True

    async def drained(self) -> None:
        """Return once every group with a consumer has handled everything published to it so far, including what
        those handlers published in turn and redeliveries still waiting their delay. Tests wait on this rather than
        on a number of event-loop turns or a short sleep, which a slow machine (or a database thread) outlasts."""
        while busy := [s.group for s in self._subscriptions if not s.group.idle.is_set()]:
            await busy[0].idle.wait()

    async def close(self) -> None:
        for sub in list(self._subscriptions):
            await sub.close()
        self._groups.clear()
