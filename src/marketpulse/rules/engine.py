"""The rule engine: every active rule, matched against whole-market updates through the threshold index. Pure.

    engine = RuleEngine()
    engine.add(compile_rule_for(rule_id, owner_id, rule_in))
    for m in engine.update("price", now_ms, symbol_rows, prices): ...     # one key, many symbols at once
    engine.on_event(EventLeaf("volume_spike", "SPIKE"), "BTCUSDT", now_ms, alert_id)

What an update does (the meaning is in `conditions`, the notification rules in `triggers`):
1. the index of the key yields the (rule, symbol) pairs whose thresholds the update crossed: fire candidates and
   re-arm candidates; nothing else is looked at;
2. re-arm candidates whose relaxed conditions are now false are armed again;
3. fire candidates whose conditions were false before the update and are true after it notify, if armed and their
   frequency, cooldown and expiry allow.
Rules with one condition on one symbol and a plain threshold (most rules) take a vectorized path: the index's
answer is exact for them, and their state lives in arrays indexed by slot. The others (groups, channels, several
symbols, "*") are checked one candidate at a time against their whole tree, with state in `TriggerStates`.
`NaiveEngine` (tests, benchmark) evaluates every rule on every update with the same definitions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from marketpulse.rules.conditions import (
    EventLeaf,
    Leaf,
    Node,
    Values,
    compile_rule,
    fire_thresholds,
    holds_after,
    holds_before,
    holds_relaxed,
    leaves_of,
    rearm_thresholds,
)
from marketpulse.rules.index import WILDCARD, ThresholdIndex
from marketpulse.rules.model import RuleIn
from marketpulse.rules.triggers import FOREVER, NEVER, Trigger, TriggerStates, allowed, event_key

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
B = npt.NDArray[np.bool_]
FAST_OPS = frozenset({"gt", "gte", "lt", "lte", "crosses_above", "crosses_below", "crosses"})
LEVEL_OPS = ("gt", "gte", "lt", "lte")
MAX_CHECKS = 3  # conditions of an all-of-levels group decided on the vectorized path
FIRE, REARM = 0, 1  # the low bit of an index entry's code; the rest is the rule's slot


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    owner_id: str
    tree: Node
    trigger: Trigger
    symbols: tuple[str, ...] | None  # None: every symbol

    @property
    def single_leaf(self) -> Leaf | None:
        items = self.tree.items
        return items[0] if len(items) == 1 and isinstance(items[0], Leaf) else None


def compile_rule_for(rule_id: str, owner_id: str, rule: RuleIn, watchlist_symbols: Sequence[str] = ()) -> CompiledRule:
    targets = rule.target_symbols()
    symbols = None if targets == "*" else tuple(targets if targets is not None else watchlist_symbols)
    trigger = Trigger.of(rule.frequency, rule.interval.value, rule.cooldown_s, rule.expires_at, rule.hysteresis_pct)
    return CompiledRule(rule_id, owner_id, compile_rule(rule), trigger, symbols)


@dataclass(frozen=True, slots=True)
class StateChange:
    """A rule's trigger state on one symbol after an update changed it (it fired, or it re-armed)."""

    rule_id: str
    owner_id: str
    symbol: str
    armed: bool
    last_fired_ms: int | None  # None: never fired
    as_of_ms: int  # the market time of the update


@dataclass(frozen=True, slots=True)
class Match:
    rule_id: str
    owner_id: str
    symbol: str
    time_ms: int
    event_key: str
    key: str | None  # the value that moved (None for an event)
    value: float | None
    disables: bool  # `once`: the rule is now disabled


class Matches:
    """One update's matches: the vectorized path's as arrays (materialized only when iterated), then the rest."""

    def __init__(self, engine: RuleEngine, key: str | None, now_ms: int, fast_slots: I64, fast_syms: I64,
                 fast_values: F64, slow: list[Match]) -> None:
        self._engine, self.key, self.now_ms = engine, key, now_ms
        self.fast_slots, self.fast_syms, self.fast_values, self.slow = fast_slots, fast_syms, fast_values, slow

    def __len__(self) -> int:
        return len(self.fast_slots) + len(self.slow)

    def __iter__(self) -> Iterator[Match]:
        for slot, sym, value in zip(self.fast_slots.tolist(), self.fast_syms.tolist(), self.fast_values.tolist(),
                                    strict=True):
            yield self._engine.match_of(slot, sym, self.now_ms, self.key, value)
        yield from self.slow


EMPTY_I64 = np.empty(0, np.int64)


class RuleEngine:
    # Per slot, for the vectorized path (see `_grow`).
    alive: B
    fast: B
    armed: B
    per_bar: B
    last_fired: I64
    cooldown: I64
    expires: I64
    step: I64
    crosses_band: F64
    threshold: F64
    # All-of-levels groups on the vectorized path: each condition's key id (-1: none), operator and threshold.
    checks: npt.NDArray[np.int32]
    check_op: npt.NDArray[np.int8]
    check_a: npt.NDArray[np.float64]

    def __init__(self, *, track_state: bool = False) -> None:
        """`track_state`: remember which (rule, symbol) states each update changed, for `take_state_changes` (the
        worker persists them); off, nothing accumulates (the benchmark, the property tests)."""
        self.track_state = track_state
        self._changed_fast: list[I64] = []  # slots whose vectorized state changed
        self._changed_slow: set[tuple[int, int]] = set()  # (slot, symbol) of the others
        self._changed_at: int = 0  # market time of the newest change
        self.symbols: list[str] = []
        self.sym_idx: dict[str, int] = {}
        self.values: dict[str, F64] = {}
        self.index: dict[str, ThresholdIndex] = {}
        self.rules: list[CompiledRule | None] = []  # by slot
        self.slot_of: dict[str, int] = {}
        self.events: dict[str, set[int]] = {}
        self.key_names: list[str] = []  # by key id (the all-of-levels checks name keys by id)
        self.key_ids: dict[str, int] = {}
        self._check_kids: set[int] = set()  # keys some all-of-levels check reads
        self.states = TriggerStates()
        self._cap = 0
        self._grow(1024)

    # --- rules ---------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.slot_of)

    def _grow(self, need: int) -> None:
        """The per-slot arrays (the vectorized path's rule settings and state) hold at least `need` slots."""
        if need <= self._cap:
            return
        cap = max(need, 2 * self._cap)
        n = self._cap

        def bools(old: B | None, fill: bool) -> B:
            new: B = np.full(cap, fill, np.bool_)
            if old is not None:
                new[:n] = old
            return new

        def ints(old: I64 | None, fill: int) -> I64:
            new: I64 = np.full(cap, fill, np.int64)
            if old is not None:
                new[:n] = old
            return new

        def floats(old: F64 | None, fill: float) -> F64:
            new: F64 = np.full(cap, fill, np.float64)
            if old is not None:
                new[:n] = old
            return new

        first = n == 0
        self.alive = bools(None if first else self.alive, False)
        self.fast = bools(None if first else self.fast, False)
        self.armed = bools(None if first else self.armed, True)
        self.per_bar = bools(None if first else self.per_bar, False)
        self.last_fired = ints(None if first else self.last_fired, int(NEVER))
        self.cooldown = ints(None if first else self.cooldown, 0)
        self.expires = ints(None if first else self.expires, int(FOREVER))
        self.step = ints(None if first else self.step, 60_000)
        self.crosses_band = floats(None if first else self.crosses_band, -1.0)  # `crosses` rules: |a|·band
        self.threshold = floats(None if first else self.threshold, 0.0)
        checks: npt.NDArray[np.int32] = np.full((cap, MAX_CHECKS), -1, np.int32)
        check_op: npt.NDArray[np.int8] = np.zeros((cap, MAX_CHECKS), np.int8)
        check_a: F64 = np.zeros((cap, MAX_CHECKS), np.float64)
        if not first:
            checks[:n], check_op[:n], check_a[:n] = self.checks, self.check_op, self.check_a
        self.checks, self.check_op, self.check_a = checks, check_op, check_a
        self._cap = cap

    def symbol(self, name: str) -> int:
        idx = self.sym_idx.get(name)
        if idx is None:
            idx = self.sym_idx[name] = len(self.symbols)
            self.symbols.append(name)
        return idx

    def add(self, rule: CompiledRule) -> None:
        """Insert (or replace) a rule; its state starts armed."""
        for key, direction, sym, thr, code in self._place(rule):
            self._index(key).add(sym, direction, thr, code)

    def add_many(self, rules: Iterable[CompiledRule]) -> None:
        """Insert many rules at once (a rebuild from the store): one sort per key and direction, not a buffer."""
        entries: dict[tuple[str, int], list[tuple[int, float, int]]] = {}
        for rule in rules:
            for key, direction, sym, thr, code in self._place(rule):
                entries.setdefault((key, direction), []).append((sym, thr, code))
        for (key, direction), rows in entries.items():
            syms, thrs, codes = zip(*rows, strict=True)
            self._index(key).add_many(
                np.asarray(syms, np.int32), direction, np.asarray(thrs, np.float64), np.asarray(codes, np.int64))

    def _key_id(self, key: str) -> int:
        kid = self.key_ids.get(key)
        if kid is None:
            kid = self.key_ids[key] = len(self.key_names)
            self.key_names.append(key)
        return kid

    def _index(self, key: str) -> ThresholdIndex:
        index = self.index.get(key)
        if index is None:
            index = self.index[key] = ThresholdIndex()
        return index

    def _place(self, rule: CompiledRule) -> Iterator[tuple[str, int, int, float, int]]:
        """Give the rule a slot and its settings; its index entries: (key, direction, symbol, threshold, code)."""
        if rule.id in self.slot_of:
            self.remove(rule.id)
        slot = len(self.rules)
        self._grow(slot + 1)
        self.rules.append(rule)
        self.slot_of[rule.id] = slot
        self.alive[slot] = True
        t = rule.trigger
        self.cooldown[slot], self.step[slot] = t.cooldown_ms, t.interval_ms
        self.expires[slot] = FOREVER if t.expires_at_ms is None else t.expires_at_ms
        self.per_bar[slot] = t.frequency in ("once_per_bar", "once_per_bar_close")
        leaf = rule.single_leaf
        # `once` rules take the slow path: they leave the engine as they fire, before their match is read.
        single = rule.symbols is not None and len(rule.symbols) == 1 and t.frequency != "once"
        levels = _all_of_levels(rule.tree)
        self.fast[slot] = single and (leaf is not None and leaf.op in FAST_OPS or levels is not None)
        self.checks[slot] = -1
        if self.fast[slot] and levels is not None and leaf is None:
            for j, level in enumerate(levels):
                self.checks[slot, j] = self._key_id(level.key)
                self._check_kids.add(int(self.checks[slot, j]))
                self.check_op[slot, j], self.check_a[slot, j] = LEVEL_OPS.index(level.op), level.a
        if leaf is not None and leaf.op == "crosses":
            self.crosses_band[slot], self.threshold[slot] = abs(leaf.a) * t.band_pct / 100, leaf.a
        syms = [WILDCARD] if rule.symbols is None else [self.symbol(s) for s in rule.symbols]
        entries = []
        for lf in leaves_of(rule.tree):
            if isinstance(lf, EventLeaf):
                self.events.setdefault(lf.event, set()).add(slot)
                continue
            for purpose, lines in ((FIRE, fire_thresholds(lf)), (REARM, rearm_thresholds(lf, t.band_pct))):
                entries += [(lf.key, d, s, thr, slot * 2 + purpose) for d, thr in lines for s in syms]
        return iter(entries)

    def remove(self, rule_id: str) -> None:
        slot = self.slot_of.pop(rule_id, None)
        if slot is None:
            return
        self.alive[slot] = False
        self.rules[slot] = None
        self.states.forget(slot)
        for slots in self.events.values():
            slots.discard(slot)
        self._dead = getattr(self, "_dead", 0) + 1
        if self._dead > 4096 and self._dead > len(self.slot_of) // 8:  # compact once an eighth is dead
            for index in self.index.values():
                index.compact(self.alive)
            self._dead = 0

    def keys_in_use(self) -> set[str]:
        """Keys some rule reads (the feeds compute only these)."""
        return set(self.index)

    # --- updates -------------------------------------------------------------------------------------------------

    def _store(self, key: str) -> F64:
        arr = self.values.get(key)
        if arr is None or len(arr) < len(self.symbols):
            new: F64 = np.full(max(len(self.symbols), 64) * 2, np.nan)
            if arr is not None:
                new[: len(arr)] = arr
            arr = self.values[key] = new
        return arr

    def update(self, key: str, now_ms: int, syms: I32, vals: F64) -> Matches:
        """Symbols `syms` (engine indexes) now have `vals` for `key`, at market time `now_ms`."""
        keep = ~np.isnan(vals)
        syms, vals = syms[keep], vals[keep]
        store = self._store(key)
        prev = store[syms]
        store[syms] = vals
        index = self.index.get(key)
        if index is None or not len(syms):
            return Matches(self, key, now_ms, EMPTY_I64, EMPTY_I64, np.empty(0), [])
        codes, rows = index.crossed(syms.astype(np.int32), prev, vals)
        if self.track_state and len(codes):
            self._changed_at = now_ms
        slots = codes >> 1
        live = self.alive[slots]
        slots, rows, purpose = slots[live], rows[live], (codes & 1)[live]
        rearm = purpose == REARM
        self._rearm(slots[rearm], syms[rows[rearm]])
        fire = ~rearm
        return self._fire(key, now_ms, slots[fire], rows[fire], syms, prev, vals)

    def _rearm(self, slots: I64, syms: npt.NDArray[np.integer]) -> None:
        fast = self.fast[slots]
        f_slots = slots[fast]
        if self.track_state:
            self._changed_fast.append(f_slots[~self.armed[f_slots]])
        self.armed[f_slots] = True  # one condition: its relaxed form just turned false
        for slot, sym in zip(slots[~fast].tolist(), syms[~fast].tolist(), strict=True):
            rule = self.rules[slot]
            if rule is not None and not self.states.armed(slot, sym) and \
                    not holds_relaxed(rule.tree, self._values(sym), rule.trigger.band_pct):
                self.states.rearm(slot, sym)
                if self.track_state:
                    self._changed_slow.add((slot, sym))

    def _fire(self, key: str, now_ms: int, slots: I64, rows: I64, syms: npt.NDArray[np.integer], prev: F64,
              vals: F64) -> Matches:
        fast = self.fast[slots]
        f_slots, f_rows = slots[fast], rows[fast]
        kid_row, check_values = self._check_values()
        ok = _fast_ok(f_slots, syms[f_rows].astype(np.int64), now_ms, self.armed, self.last_fired, self.cooldown,
                      self.expires, self.per_bar, self.step, self.checks, self.check_op, self.check_a, kid_row,
                      check_values)
        f_slots, f_rows = f_slots[ok], f_rows[ok]
        f_slots, first = np.unique(f_slots, return_index=True)
        f_rows = f_rows[first]
        f_vals = vals[f_rows]
        self.last_fired[f_slots] = now_ms
        if self.track_state:
            self._changed_fast.append(f_slots)
        band = self.crosses_band[f_slots]  # `crosses` stays armed when it jumped past its whole band
        self.armed[f_slots] = (band >= 0) & (np.abs(f_vals - self.threshold[f_slots]) >= band)
        slow = self._fire_slow(key, now_ms, slots[~fast], rows[~fast], syms, prev)
        return Matches(self, key, now_ms, f_slots, syms[f_rows].astype(np.int64), f_vals, slow)

    def _check_values(self) -> tuple[I64, F64]:
        """For the all-of-levels checks: a row per key some check reads (`kid_row[key id]`), each row that key's
        current value per symbol."""
        kid_row: I64 = np.full(max(len(self.key_names), 1), -1, np.int64)
        width = max(len(self.symbols), 1)
        kids = sorted(self._check_kids)
        matrix: F64 = np.empty((len(kids), width), np.float64)
        for row, kid in enumerate(kids):
            kid_row[kid] = row
            matrix[row] = self._store(self.key_names[kid])[:width]
        return kid_row, matrix

    def _fire_slow(self, key: str, now_ms: int, slots: I64, rows: I64, syms: npt.NDArray[np.integer],
                   prev: F64) -> list[Match]:
        out: list[Match] = []
        seen: set[tuple[int, int]] = set()
        for slot, row in zip(slots.tolist(), rows.tolist(), strict=True):
            sym = int(syms[row])
            if (slot, sym) in seen:
                continue
            seen.add((slot, sym))
            rule = self.rules[slot]
            if rule is None or not self.states.armed(slot, sym) or \
                    not allowed(rule.trigger, self.states.last(slot, sym), now_ms):
                continue  # the cheap refusals before the tree is read
            values = Values(self._view(sym), key, float(prev[row]))
            match = self._try(slot, sym, now_ms, values)
            if match is not None:
                out.append(match)
        return out

    def _try(self, slot: int, sym: int, now_ms: int, values: Values) -> Match | None:
        """The slow path's decision for one (rule, symbol); fires and records it when it may."""
        rule = self.rules[slot]
        if rule is None or not self.states.armed(slot, sym):
            return None
        if rule.symbols is not None and self.symbols[sym] not in rule.symbols:
            return None
        if not allowed(rule.trigger, self.states.last(slot, sym), now_ms):
            return None
        if holds_before(rule.tree, values) or not holds_after(rule.tree, values):
            return None
        self.states.fire(slot, sym, now_ms, disarm=holds_relaxed(rule.tree, values, rule.trigger.band_pct))
        if self.track_state:
            self._changed_slow.add((slot, sym))
            self._changed_at = max(self._changed_at, now_ms)
        value = values.now(values.key) if values.key is not None else None
        match = self._match(rule, sym, now_ms, values.key, value,
                            f"{values.event.event}:{values.event.detail}" if values.event else None)
        if rule.trigger.frequency == "once":
            self.remove(rule.id)
        return match

    def on_event(self, event: EventLeaf, symbol: str, now_ms: int, key: str,
                 owner_id: str | None = None) -> list[Match]:
        """A platform event (volume spike, paper fill of `owner_id`, strategy signal) on `symbol`; `key` is the
        event's own id, which becomes the match's event key."""
        sym = self.symbol(symbol)
        out = []
        for slot in sorted(self.events.get(event.event, ())):
            rule = self.rules[slot]
            if rule is None or (owner_id is not None and rule.owner_id != owner_id):
                continue
            match = self._try(slot, sym, now_ms, Values(self._view(sym), None, math.nan, event))
            if match is not None:
                out.append(_with_key(match, f"{event.event}:{key}"))
        return out

    # --- trigger state, persisted by the worker --------------------------------------------------------------------

    def take_state_changes(self) -> list[StateChange]:
        """The states changed since the last call (with `track_state`), as they are now; then forget them."""
        out: list[StateChange] = []
        at = self._changed_at
        if self._changed_fast:
            for slot in np.unique(np.concatenate(self._changed_fast)).tolist():
                rule = self.rules[slot]
                if rule is None or rule.symbols is None:
                    continue
                fired = int(self.last_fired[slot])
                out.append(StateChange(rule.id, rule.owner_id, rule.symbols[0], bool(self.armed[slot]),
                                       None if fired == NEVER else fired, at))
        for slot, sym in sorted(self._changed_slow):
            rule = self.rules[slot]
            if rule is None:
                continue
            fired = self.states.last(slot, sym)
            out.append(StateChange(rule.id, rule.owner_id, self.symbols[sym], self.states.armed(slot, sym),
                                   None if fired == NEVER else fired, at))
        self._changed_fast, self._changed_slow = [], set()
        return out

    def restore(self, rule_id: str, symbol: str, armed: bool, last_fired_ms: int | None) -> None:
        """Put back a rule's stored state on one symbol (after `add`, as a worker starts)."""
        slot = self.slot_of.get(rule_id)
        rule = None if slot is None else self.rules[slot]
        if slot is None or rule is None or (rule.symbols is not None and symbol not in rule.symbols):
            return
        fired = int(NEVER) if last_fired_ms is None else last_fired_ms
        if self.fast[slot]:
            self.armed[slot], self.last_fired[slot] = armed, fired
            return
        sym = self.symbol(symbol)
        if last_fired_ms is not None:
            self.states.last_fired[(slot, sym)] = fired
        if not armed:
            self.states.disarmed.add((slot, sym))

    # --- what matches look like --------------------------------------------------------------------------------

    def _match(self, rule: CompiledRule, sym: int, now_ms: int, key: str | None, value: float | None,
               event: str | None = None) -> Match:
        t = rule.trigger
        ek = event or event_key(t.frequency, t.interval_ms, self.symbols[sym], now_ms)
        return Match(rule.id, rule.owner_id, self.symbols[sym], now_ms, ek, key, value, t.frequency == "once")

    def match_of(self, slot: int, sym: int, now_ms: int, key: str | None, value: float) -> Match:
        rule = self.rules[slot]
        if rule is None:  # removed since: can't happen to fast-path rules (never `once`) within one update
            raise LookupError(slot)
        return self._match(rule, sym, now_ms, key, value)

    def _view(self, sym: int) -> _SymbolView:
        return _SymbolView(self.values, sym)

    def _values(self, sym: int) -> Values:
        return Values(self._view(sym))


@numba.njit(cache=True, nogil=True)
def _fast_ok(slots: I64, syms: I64, now_ms: int, armed: B, last_fired: I64, cooldown: I64, expires: I64,
             per_bar: B, step: I64, checks: npt.NDArray[np.int32], check_op: npt.NDArray[np.int8], check_a: F64,
             kid_row: I64, values: F64) -> B:  # pragma: no cover (compiled; held to the naive engine by the tests)
    """Which fire candidates of the vectorized path notify: armed, allowed by `triggers.allowed` (expiry, cooldown,
    one per bar), and for all-of-levels groups every condition holding now (the one that just became true does;
    NaN, no value yet, holds nothing). One pass over the candidates, nothing materialized per rule."""
    n = len(slots)
    ok = np.zeros(n, np.bool_)
    for i in range(n):
        s = slots[i]
        if not armed[s] or now_ms >= expires[s]:
            continue
        last = last_fired[s]
        if now_ms - last < cooldown[s]:
            continue
        if per_bar[s]:
            st = step[s]
            if now_ms - now_ms % st == last - last % st:
                continue
        good = True
        for j in range(checks.shape[1]):
            kid = checks[s, j]
            if kid < 0:
                break
            x = values[kid_row[kid], syms[i]]
            a = check_a[s, j]
            op = check_op[s, j]
            if op == 0:
                holds = x > a
            elif op == 1:
                holds = x >= a
            elif op == 2:
                holds = x < a
            else:
                holds = x <= a
            if not holds:
                good = False
                break
        ok[i] = good
    return ok


def _all_of_levels(tree: Node) -> tuple[Leaf, ...] | None:
    """The conditions of an AND group of 2-3 level conditions (gt/gte/lt/lte), else None."""
    items = tree.items
    if tree.all and 2 <= len(items) <= MAX_CHECKS and all(isinstance(i, Leaf) and i.op in LEVEL_OPS for i in items):
        return tuple(i for i in items if isinstance(i, Leaf))
    return None


def _with_key(match: Match, key: str) -> Match:
    return Match(match.rule_id, match.owner_id, match.symbol, match.time_ms, key, None, None, match.disables)


class _SymbolView(dict[str, float]):
    """The current value of every key for one symbol, read lazily from the engine's arrays."""

    def __init__(self, values: dict[str, F64], sym: int) -> None:
        super().__init__()
        self._values, self._sym = values, sym

    def get(self, key: str, default: float = math.nan) -> float:  # type: ignore[override]
        arr = self._values.get(key)
        return float(arr[self._sym]) if arr is not None and self._sym < len(arr) else default
