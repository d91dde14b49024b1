"""Candle intervals: the one definition every path (API, CLI, bus, stores, scanners, backtests) accepts.

The set is Binance's intervals that divide a UTC day evenly (1m … 1d). Binance's 3d, 1w and 1M are left out on
purpose: a week opens on Monday and a month has no fixed length, so neither can be found by flooring epoch ms, and
every bucket here is "open time = t - t % ms". Anything else (`7m`, `2w`, `1H`, ` 1h`) is refused with a message
listing the accepted values, the same message on every path.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


class UnknownIntervalError(ValueError):
    def __init__(self, value: object) -> None:
        super().__init__(f"unknown interval {value!r} (use one of {', '.join(Interval)})")


class Interval(StrEnum):
    """A candle interval; a `str` too ("1h"), so it compares and serializes as its name."""

    M1 = "1m"
    M3 = "3m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H2 = "2h"
    H4 = "4h"
    H6 = "6h"
    H8 = "8h"
    H12 = "12h"
    D1 = "1d"

    @classmethod
    def parse(cls, value: object) -> Interval:
        """The interval named `value` exactly; UnknownIntervalError (a ValueError) for anything else."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, str) or value not in INTERVAL_NAMES:
            raise UnknownIntervalError(value)
        return cls(value)

    @property
    def ms(self) -> int:
        return _MS[self]

    def floor(self, t_ms: int) -> int:
        """Open time of the candle of this interval that contains `t_ms` (UTC-aligned)."""
        return t_ms - t_ms % self.ms

    def close_time(self, open_ms: int) -> int:
        """When the candle opening at `open_ms` closes (exclusive: the next candle's open time)."""
        return open_ms + self.ms

    def holds(self, finer: Interval) -> int:
        """How many `finer` candles make one of this interval; ValueError when they don't tile it."""
        if finer.ms > self.ms or self.ms % finer.ms:
            raise ValueError(f"{self} is not a whole multiple of {finer}")
        return self.ms // finer.ms


INTERVAL_NAMES = frozenset(i.value for i in Interval)
_UNIT_MS = {"m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS}
_MS: dict[Interval, int] = {i: int(i.value[:-1]) * _UNIT_MS[i.value[-1]] for i in Interval}
# Name → length for hot paths that already hold a plain str (a Candle checks its own interval on creation).
MS_BY_NAME: dict[str, int] = {i.value: ms for i, ms in _MS.items()}


def interval_ms(value: object) -> int:
    """Shorthand for `Interval.parse(value).ms`."""
    return Interval.parse(value).ms


def interval_of_ms(step_ms: int) -> Interval | None:
    """The interval whose length is `step_ms`, if any (for files whose interval is read off their spacing)."""
    return next((i for i in Interval if i.ms == step_ms), None)


def _parse_field(value: Any) -> Interval:
    return Interval.parse(value)


# A pydantic field type: refuses unknown values with UnknownIntervalError's message (a 422 naming the field).
IntervalField = Annotated[Interval, BeforeValidator(_parse_field)]
