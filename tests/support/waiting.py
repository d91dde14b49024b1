"""Waiting for something to become true, the one way the tests do it: poll with a deadline, fail with a message."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from marketpulse.bus import EventBus
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None] | T | None], *, deadline_s: float = 5.0, what: str = "the condition",
    every_s: float = 0.01, retry_on: tuple[type[BaseException], ...] = (), check: Callable[[], None] | None = None,
) -> T:
    """Poll `probe` (sync or async) until it returns something truthy, and return that; at the deadline fail
    naming `what` with the last value or error seen.

    `retry_on`: exceptions that mean "not yet" (a server still starting: connection refused, 503); anything else
    fails at once. `check` runs before each poll to fail early (a child process died). A probe that hangs is cut
    off at the deadline too, so a stuck query fails this wait instead of eating the test's timeout.
    Only for waiting *for* an effect: proving that something does *not* happen is done with the injected clock or
    an explicit event, never by waiting a while. The deadline bounds the wait; nothing here asserts a speed."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    last: object = None
    while True:
        if check is not None:
            check()
        try:
            value = probe()
            if inspect.isawaitable(value):
                value = await asyncio.wait_for(value, timeout=max(end - loop.time(), every_s))
            if value:
                return value  # type: ignore[return-value]
            last = value
        except (TimeoutError, *retry_on) as exc:
            last = exc
        if loop.time() > end:
            raise AssertionError(f"timed out after {deadline_s:g} s waiting for {what} (last: {last!r})")
        await asyncio.sleep(every_s)


async def drained(bus: EventBus, *, deadline_s: float = 30.0) -> None:
    """Wait until the in-process bus's consumers have handled everything published so far (and what they published
    in turn): the explicit "nothing more is coming" that a few event-loop turns or a short sleep only guess at."""
    assert isinstance(bus, MemoryBus), f"drained() needs the in-process bus, not {type(bus).__name__}"
    try:
        await asyncio.wait_for(bus.drained(), deadline_s)
    except TimeoutError:
        raise AssertionError(f"the bus's consumers were still busy after {deadline_s:g} s") from None


async def parked(clock: FakeClock, task: asyncio.Task[Any], *, count: int = 1, deadline_s: float = 30.0) -> None:
    """Wait until tasks sleep on `clock` for a time ahead (`count` of them), i.e. have done all that is due by now;
    if `task` (the one driven) ends instead, fail with its error."""
    sleeping = asyncio.ensure_future(clock.parked(count))
    done, _ = await asyncio.wait({sleeping, task}, timeout=deadline_s, return_when=asyncio.FIRST_COMPLETED)
    sleeping.cancel()
    if task in done:
        task.result()
        raise AssertionError(f"{task.get_name()} ended instead of sleeping on the clock")
    assert sleeping in done, f"{task.get_name()} did not sleep on the clock within {deadline_s:g} s"
