"""Injected time. Wall-clock logic takes a Clock so tests move time without sleeping."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...

    async def sleep_until(self, ms: int) -> None: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep_until(self, ms: int) -> None:
        delay = (ms - self.now_ms()) / 1000
        if delay > 0:
            await asyncio.sleep(delay)


class FakeClock:
    """A clock tests drive by hand; `sleep_until` returns once `advance` has passed the deadline.

    `parked(n)` waits until n tasks sleep on it for a time still ahead: they have done all that is due by now. Tests
    advance, then wait on that instead of on a number of event-loop turns (which a slow machine outlasts)."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms
        self._changed = asyncio.Event()
        self._deadlines: list[int] = []  # of the tasks in sleep_until now
        self._parking = asyncio.Event()  # set (and replaced) when one starts or stops sleeping

    def now_ms(self) -> int:
        return self._now

    def set(self, ms: int) -> None:
        self._now = ms
        self._changed.set()
        self._changed = asyncio.Event()

    def advance(self, ms: int) -> None:
        self.set(self._now + ms)

    async def sleep_until(self, ms: int) -> None:
        if self._now >= ms:
            return
        self._deadlines.append(ms)
        self._parking_changed()
        try:
            while self._now < ms:
                await self._changed.wait()
        finally:
            self._deadlines.remove(ms)
            self._parking_changed()

    def _parking_changed(self) -> None:
        self._parking.set()
        self._parking = asyncio.Event()

    async def parked(self, count: int = 1) -> None:
        """Return once `count` tasks are asleep on this clock until a time after now."""
        while sum(deadline > self._now for deadline in self._deadlines) < count:
            await self._parking.wait()


class ScaledClock:
    """Market time that runs `speed`× faster than wall time from `start_ms` (the replay's clock)."""

    def __init__(self, start_ms: int, speed: float, base: Clock | None = None) -> None:
        self._base = base or SystemClock()
        self._origin_wall = self._base.now_ms()
        self._start = start_ms
        self.speed = speed

    def now_ms(self) -> int:
        return self._start + int((self._base.now_ms() - self._origin_wall) * self.speed)

    async def sleep_until(self, ms: int) -> None:
        wall_target = self._origin_wall + (ms - self._start) / self.speed
        await self._base.sleep_until(int(wall_target))


class EventClock:
    """Market time as observed on the bus (the newest event time seen); `fallback`'s time until the first event.

    A worker running apart from its source can't know a replay's accelerated clock; it follows the events
    instead, so its 5-minute scans, paper orders and UTC days land on market time whatever the source's speed.
    """

    def __init__(self, fallback: Clock | None = None) -> None:
        self._fallback = fallback
        self._seen: int | None = None
        self._changed = asyncio.Event()

    def observe(self, ms: int) -> None:
        if self._seen is None or ms > self._seen:
            self._seen = ms
            self._changed.set()
            self._changed = asyncio.Event()

    def now_ms(self) -> int:
        if self._seen is not None:
            return self._seen
        return self._fallback.now_ms() if self._fallback is not None else 0

    async def sleep_until(self, ms: int) -> None:
        while self.now_ms() < ms:
            await self._changed.wait()
