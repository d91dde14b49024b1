"""The retry schedule (pure): exponential backoff with jitter, 1, 2, 4, 8, 16 s before retries 1…5 (seed 002
§9.2: five retries, so at most six sends), or the provider's own `Retry-After` when it gave one."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_RETRIES = 5
BASE_DELAY_S = 1.0
JITTER = 0.1  # up to +10%: retries of many notifications that failed together don't arrive together
MAX_RETRY_AFTER_S = 3600.0  # a provider asking for longer is capped (the row would look stuck)


@dataclass
class RetrySchedule:
    max_retries: int = MAX_RETRIES
    base_s: float = BASE_DELAY_S
    jitter: float = JITTER
    random: Callable[[], float] = field(default=random.random)  # injected: tests fix it

    def backoff_s(self, retry: int) -> float:
        """Seconds before retry number `retry` (1-based): base·2^(retry-1), stretched by up to `jitter`."""
        return self.base_s * 2 ** (retry - 1) * (1 + self.jitter * self.random())

    def next_delay_s(self, attempts_made: int, retry_after_s: float | None) -> float | None:
        """Seconds until the next attempt after `attempts_made` failed ones; None: give up (dead)."""
        retry = attempts_made  # the first send is attempt 1, the first retry comes after it
        if retry > self.max_retries:
            return None
        if retry_after_s is not None and retry_after_s > 0:
            return min(retry_after_s, MAX_RETRY_AFTER_S)
        return self.backoff_s(retry)
