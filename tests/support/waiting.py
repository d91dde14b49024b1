"""Waiting for something to become true, the one way the tests do it: poll with a deadline, fail with a message."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

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
