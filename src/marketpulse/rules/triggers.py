"""When a matched rule may notify: trigger frequency, cooldown, expiry, and the armed state. Pure: no I/O.

As on TradingView:
- `once`: the first match notifies, then the rule disables itself;
- `once_per_bar`: at most one notification per bar of the rule's interval (the bar its match falls in);
- `once_per_bar_close`: the rule's values change only when a bar closes (see `conditions`), so once per bar too;
- `every_time`: every match.
Each notification disarms the rule (per symbol) until its conditions relax past the hysteresis band; a match inside
`cooldown_s` of the previous notification, or at/after `expires_at`, is dropped (not postponed).

The engine keeps the state of single-symbol, single-condition rules in numpy arrays (`engine._fast_ok`, the same
rule compiled over them) and of the others in `TriggerStates`; the time of a match is the market time of the update.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketpulse.marketdata.intervals import MS_BY_NAME

FREQ_CODES = {"once": 0, "once_per_bar": 1, "once_per_bar_close": 2, "every_time": 3}
NEVER = np.iinfo(np.int64).min // 2  # "last fired" of a rule that never fired
FOREVER = np.iinfo(np.int64).max  # "expires at" of a rule without expiry


@dataclass(frozen=True, slots=True)
class Trigger:
    frequency: str
    interval_ms: int
    cooldown_ms: int
    expires_at_ms: int | None
    band_pct: float

    @classmethod
    def of(cls, frequency: str, interval: str, cooldown_s: int, expires_at_ms: int | None,
           hysteresis_pct: float) -> Trigger:
        return cls(frequency, MS_BY_NAME[interval], cooldown_s * 1000, expires_at_ms, hysteresis_pct)

    @property
    def code(self) -> int:
        return FREQ_CODES[self.frequency]


def allowed(trigger: Trigger, last_fired_ms: int, now_ms: int) -> bool:
    """May an armed rule that matches at `now_ms` notify, given when it last did?"""
    if trigger.expires_at_ms is not None and now_ms >= trigger.expires_at_ms:
        return False
    if now_ms - last_fired_ms < trigger.cooldown_ms:
        return False
    if trigger.frequency in ("once_per_bar", "once_per_bar_close"):
        step = trigger.interval_ms
        return now_ms - now_ms % step != last_fired_ms - last_fired_ms % step
    return True


def event_key(frequency: str, interval_ms: int, symbol: str, now_ms: int) -> str:
    """The triggering event's key: one notification per (rule, key), however often the bus delivers the update or
    however many workers match it. Per bar for the per-bar frequencies, per update otherwise."""
    if frequency in ("once_per_bar", "once_per_bar_close"):
        return f"{symbol}@bar:{now_ms - now_ms % interval_ms}"
    return f"{symbol}@{now_ms}"


class TriggerStates:
    """Armed state and last notification per (rule, symbol), for the rules the arrays don't hold."""

    def __init__(self) -> None:
        self.disarmed: set[tuple[int, int]] = set()
        self.last_fired: dict[tuple[int, int], int] = {}

    def armed(self, slot: int, sym: int) -> bool:
        return (slot, sym) not in self.disarmed

    def last(self, slot: int, sym: int) -> int:
        return self.last_fired.get((slot, sym), int(NEVER))

    def fire(self, slot: int, sym: int, now_ms: int, disarm: bool) -> None:
        self.last_fired[(slot, sym)] = now_ms
        if disarm:
            self.disarmed.add((slot, sym))

    def rearm(self, slot: int, sym: int) -> None:
        self.disarmed.discard((slot, sym))

    def forget(self, slot: int) -> None:
        self.disarmed = {k for k in self.disarmed if k[0] != slot}
        self.last_fired = {k: v for k, v in self.last_fired.items() if k[0] != slot}
