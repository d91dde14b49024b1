"""Reconnect/retry delays (pure): exponential from 1 s, capped at 30 s, with jitter so many clients don't stampede."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """`next_delay()` gives 1, 2, 4, … 30, 30 seconds (each shortened by up to `jitter`); `reset()` starts over."""

    def __init__(
        self, initial_s: float = 1.0, cap_s: float = 30.0, jitter: float = 0.2,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        self.initial_s, self.cap_s, self.jitter = initial_s, cap_s, jitter
        self._rng = rng
        self._attempt = 0

    def next_delay(self) -> float:
        base = min(self.cap_s, self.initial_s * 2 ** min(self._attempt, 32))
        self._attempt += 1
        return base * (1 - self.jitter * self._rng())

    def reset(self) -> None:
        self._attempt = 0

    @property
    def attempt(self) -> int:
        return self._attempt
