"""In-process bus on asyncio queues: one queue per (topic, group), shared by that group's consumers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import defaultdict
from typing import Any

import structlog

from marketpulse.bus.base import EventBus, Handler, Message, Subscription

log = structlog.get_logger(__name__)

REDELIVERY_DELAY_S = 0.05
MAX_DELIVERIES = 5


class _MemorySubscription(Subscription):
    def __init__(self, bus: MemoryBus, topic: str, group: str, task: asyncio.Task[None]) -> None:
        self._bus, self._topic, self._group, self._task = bus, topic, group, task

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._bus._release(self._topic, self._group)


class MemoryBus(EventBus):
    def __init__(self, maxsize: int = 100_000) -> None:
        self._maxsize = maxsize
        self._queues: dict[str, dict[str, asyncio.Queue[Message]]] = defaultdict(dict)
        self._consumers: dict[tuple[str, str], int] = defaultdict(int)
        self._ids = itertools.count(1)

    async def publish(self, topic: str, data: dict[str, Any]) -> str:
        msg = Message(id=f"{next(self._ids)}-0", topic=topic, data=data)
        for queue in self._queues.get(topic, {}).values():
            await queue.put(msg)
        return msg.id

    async def subscribe(
        self, topic: str, group: str, handler: Handler, *, consumer: str | None = None
    ) -> Subscription:
        queue = self._queues[topic].setdefault(group, asyncio.Queue(self._maxsize))
        self._consumers[(topic, group)] += 1
        task = asyncio.create_task(self._consume(queue, handler), name=f"bus:{topic}:{group}")
        return _MemorySubscription(self, topic, group, task)

    async def _consume(self, queue: asyncio.Queue[Message], handler: Handler) -> None:
        while True:
            msg = await queue.get()
            try:
                await handler(msg)
            except asyncio.CancelledError:
                queue.put_nowait(msg)  # not acknowledged: another consumer of the group gets it
                raise
            except Exception:
                log.exception("bus handler failed", topic=msg.topic, id=msg.id, deliveries=msg.deliveries)
                if msg.deliveries < MAX_DELIVERIES:
                    await asyncio.sleep(REDELIVERY_DELAY_S)
                    queue.put_nowait(Message(msg.id, msg.topic, msg.data, msg.deliveries + 1))

    def _release(self, topic: str, group: str) -> None:
        self._consumers[(topic, group)] -= 1

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._queues.clear()
