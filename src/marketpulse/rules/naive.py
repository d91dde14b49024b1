"""The naive evaluator: every rule on every update, one at a time, with the same definitions as the engine. Pure.

It is the specification the indexed `RuleEngine` must match exactly (property tests feed both random updates) and
the baseline the benchmark compares against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from marketpulse.rules.conditions import EventLeaf, Values, holds_after, holds_before, holds_relaxed, keys_of
from marketpulse.rules.engine import CompiledRule, Match
from marketpulse.rules.triggers import NEVER, allowed, event_key


class NaiveEngine:
    def __init__(self) -> None:
        self.rules: dict[str, CompiledRule] = {}
        self.values: dict[str, dict[str, float]] = {}  # key → symbol → value
        self.disarmed: set[tuple[str, str]] = set()
        self.last_fired: dict[tuple[str, str], int] = {}

    def add(self, rule: CompiledRule) -> None:
        self.remove(rule.id)
        self.rules[rule.id] = rule

    def remove(self, rule_id: str) -> None:
        if self.rules.pop(rule_id, None) is not None:
            self.disarmed = {k for k in self.disarmed if k[0] != rule_id}
            self.last_fired = {k: v for k, v in self.last_fired.items() if k[0] != rule_id}

    def _current(self, symbol: str) -> dict[str, float]:
        return {key: by_symbol[symbol] for key, by_symbol in self.values.items() if symbol in by_symbol}

    def update(self, key: str, now_ms: int, symbols: Sequence[str], vals: Sequence[float]) -> list[Match]:
        store = self.values.setdefault(key, {})
        prev: dict[str, float] = {}
        for symbol, value in zip(symbols, vals, strict=True):
            if not math.isnan(value):
                prev[symbol] = store.get(symbol, math.nan)
                store[symbol] = value
        out = []
        for symbol, p in prev.items():
            values = Values(self._current(symbol), key, p)
            for rule in list(self.rules.values()):
                if key in keys_of(rule.tree) and _targets(rule, symbol):
                    self._rearm(rule, symbol, values)
                    if not math.isnan(p) and (match := self._try(rule, symbol, now_ms, values)) is not None:
                        out.append(match)
        return out

    def on_event(self, event: EventLeaf, symbol: str, now_ms: int, key: str,
                 owner_id: str | None = None) -> list[Match]:
        values = Values(self._current(symbol), None, math.nan, event)
        out = []
        for rule in list(self.rules.values()):
            if _targets(rule, symbol) and (owner_id is None or rule.owner_id == owner_id):
                match = self._try(rule, symbol, now_ms, values)
                if match is not None:
                    out.append(Match(match.rule_id, match.owner_id, symbol, now_ms, f"{event.event}:{key}", None,
                                     None, match.disables))
        return out

    def _rearm(self, rule: CompiledRule, symbol: str, values: Values) -> None:
        if (rule.id, symbol) in self.disarmed and not holds_relaxed(rule.tree, values, rule.trigger.band_pct):
            self.disarmed.discard((rule.id, symbol))

    def _try(self, rule: CompiledRule, symbol: str, now_ms: int, values: Values) -> Match | None:
        state = (rule.id, symbol)
        if state in self.disarmed or not allowed(rule.trigger, self.last_fired.get(state, int(NEVER)), now_ms):
            return None
        if holds_before(rule.tree, values) or not holds_after(rule.tree, values):
            return None
        self.last_fired[state] = now_ms
        if holds_relaxed(rule.tree, values, rule.trigger.band_pct):
            self.disarmed.add(state)
        t = rule.trigger
        value = values.now(values.key) if values.key is not None else None
        match = Match(rule.id, rule.owner_id, symbol, now_ms, event_key(t.frequency, t.interval_ms, symbol, now_ms),
                      values.key, value, t.frequency == "once")
        if t.frequency == "once":
            self.remove(rule.id)
        return match


def _targets(rule: CompiledRule, symbol: str) -> bool:
    return rule.symbols is None or symbol in rule.symbols
