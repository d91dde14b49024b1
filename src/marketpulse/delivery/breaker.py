"""A circuit breaker per provider (pure; time passed in): closed → open after `threshold` failures in a row;
open refuses sends for `open_ms`; then half-open lets one probe through: success closes it, failure reopens it."""

from __future__ import annotations

from dataclasses import dataclass

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass
class CircuitBreaker:
    threshold: int = 5
    open_ms: int = 30_000
    state: str = CLOSED
    failures: int = 0
    opened_at_ms: int = 0
    probing: bool = False

    def allows(self, now_ms: int) -> bool:
        """May a send go to this provider now? In half-open, only one at a time (the probe)."""
        if self.state == OPEN and now_ms >= self.opened_at_ms + self.open_ms:
            self.state = HALF_OPEN
        if self.state == CLOSED:
            return True
        if self.state == HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def reopens_at_ms(self) -> int:
        return self.opened_at_ms + self.open_ms

    def success(self) -> None:
        self.state, self.failures, self.probing = CLOSED, 0, False

    def failure(self, now_ms: int) -> None:
        self.failures += 1
        self.probing = False
        if self.state == HALF_OPEN or self.failures >= self.threshold:
            self.state, self.opened_at_ms = OPEN, now_ms
