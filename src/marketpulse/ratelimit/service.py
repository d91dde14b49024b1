"""Counting requests against windows with the `limits` library (fixed windows: one counter per caller and window).

The storage is the one the accounts' limits use (`accounts.service.limit_storage`): in memory for one process,
Redis (under the deployment's key prefix) when several API processes must share the counts. The windows are
wall-clock ones kept by the storage, not the injected clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import StorageTypes

from marketpulse.accounts.plans import Plan
from marketpulse.ratelimit.core import Window, WindowState, headline, plan_windows

NAMESPACE = "api"
DAY_S = 86_400


@dataclass(frozen=True)
class Decision:
    allowed: bool
    state: WindowState  # the window the response's headers describe


class ApiRateLimiter:
    def __init__(self, storage: StorageTypes,
                 windows_of: Callable[[Plan], tuple[Window, ...]] = plan_windows) -> None:
        self._limiter = FixedWindowRateLimiter(storage)  # type: ignore[arg-type]
        self.windows_of = windows_of  # tests swap in small windows

    async def hit(self, caller: str, plan: Plan, *, metered: bool = False) -> Decision:
        """Count one request of `caller` (e.g. `user:<id>`, `key:<id>`, `addr:<ip>`) in each of its plan's
        windows, shortest first; a refusal stops there, so a refused request costs nothing from longer windows.
        `metered`: the caller's calls past the quota are billed, so only the windows under a day apply."""
        states = []
        for window in self.windows_of(plan):
            if metered and window.seconds >= DAY_S:
                continue
            item = RateLimitItemPerSecond(window.amount, window.seconds)
            allowed = await self._limiter.hit(item, NAMESPACE, caller)
            stats = await self._limiter.get_window_stats(item, NAMESPACE, caller)
            states.append(WindowState(window, allowed, stats.remaining, stats.reset_time))
            if not allowed:
                break
        state = headline(states)
        return Decision(state.allowed, state)

    @staticmethod
    def now_s() -> float:
        return time.time()  # the storage's windows are wall-clock ones
