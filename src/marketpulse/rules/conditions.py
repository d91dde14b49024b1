"""Conditions compiled for matching, and what each operator means. Pure: no I/O.

Every value a rule reads is a *key* of the engine's value store, one number per symbol:
- `price`, `funding_rate`, … as the market table publishes them (`mark_price` reads `price`: the ticker rows carry
  one price);
- `pct(price,1h)`: the percentage change against the value one window ago (`change_pct_1h`, `moves_up_pct` …);
- `rsi(14)@1h`, `bb_upper(20,2)@4h`: indicators on closed candles of an interval;
- with `once_per_bar_close` every key of the rule gets `@<interval>`: its values change only when a bar closes.

Matching is edge-triggered: a rule fires on an update of one key when its conditions were false before the update
and are true after it. Level operators (gt, gte, lt, lte, enters/exits a channel as a state) hold while their value
does; crossings (`crosses_above`, `crosses_below`, `crosses`, `enters_channel`, `exits_channel`) hold only on the
update that crosses. The first value seen for a key is no update (nothing fires on a restart's first tick).
Groups are monotone (AND/OR without NOT), so a group can only become true when one of its conditions does: that is
what lets the index touch only the rules whose thresholds the update crossed.

After firing, a rule (per symbol) is disarmed until its *relaxed* conditions are false: each threshold moved back by
the rule's hysteresis band (`hysteresis_pct` of the threshold), so a price sitting on a line fires once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from marketpulse.rules.model import (
    INDICATORS,
    EventCondition,
    FieldCondition,
    GroupBase,
    RuleIn,
)

EDGE_ONLY = frozenset({"crosses_above", "crosses_below", "crosses", "enters_channel", "exits_channel"})

# How an index finds a threshold t crossed by an update p → c (see `index.py`).
UP_STRICT, UP_INCL, DOWN_STRICT, DOWN_INCL = 0, 1, 2, 3
Direction = int  # UP_STRICT … DOWN_INCL

_ALIASES = {"mark_price": "price", "change_pct_1h": "pct(price,1h)", "change_pct_4h": "pct(price,4h)",
            "open_interest_change_pct_1h": "pct(open_interest_usd,1h)"}


@dataclass(frozen=True, slots=True)
class Leaf:
    key: str
    op: str  # gt gte lt lte crosses_above crosses_below crosses enters_channel exits_channel
    a: float  # the threshold, or the channel's lower bound
    b: float = math.nan  # the channel's upper bound


@dataclass(frozen=True, slots=True)
class EventLeaf:
    event: str  # volume_spike | paper_fill | strategy_signal
    detail: str | None = None  # the volume alert's type, the strategy's name


@dataclass(frozen=True, slots=True)
class Node:
    all: bool
    items: tuple[Node | Leaf | EventLeaf, ...]


Tree = Node | Leaf | EventLeaf


def key_of(cond: FieldCondition, interval: str, bar_close: bool) -> str:
    """The value-store key a field condition reads."""
    if cond.field in INDICATORS:
        name = cond.field
        period = cond.period or (20 if name.startswith("bb_") else 14)
        args = f"{period},{cond.mult or 2.0:g}" if name.startswith("bb_") else f"{period}"
        return f"{name}({args})@{interval}"
    base = _ALIASES.get(cond.field, cond.field)
    if cond.op in ("moves_up_pct", "moves_down_pct"):
        base = f"pct({base},{cond.window})"
    return f"{base}@{interval}" if bar_close else base


def compile_tree(group: GroupBase, interval: str, bar_close: bool) -> Node:
    items: list[Tree] = []
    for item in group.items:
        if isinstance(item, GroupBase):
            items.append(compile_tree(item, interval, bar_close))
        elif isinstance(item, EventCondition):
            items.append(EventLeaf(item.event, item.alert_type or item.strategy))
        else:
            items.append(_leaf(item, interval, bar_close))
    return Node(group.kind == "all", tuple(items))


def _leaf(cond: FieldCondition, interval: str, bar_close: bool) -> Leaf:
    key = key_of(cond, interval, bar_close)
    if cond.op == "moves_up_pct":
        return Leaf(key, "gte", float(cond.value or 0))
    if cond.op == "moves_down_pct":
        return Leaf(key, "lte", -float(cond.value or 0))
    if cond.op in ("enters_channel", "exits_channel"):
        return Leaf(key, cond.op, float(cond.lower or 0), float(cond.upper or 0))
    return Leaf(key, cond.op, float(cond.value or 0))


def compile_rule(rule: RuleIn) -> Node:
    return compile_tree(rule.conditions, rule.interval.value, rule.frequency == "once_per_bar_close")


def leaves_of(tree: Tree) -> list[Leaf | EventLeaf]:
    if isinstance(tree, Node):
        return [leaf for item in tree.items for leaf in leaves_of(item)]
    return [tree]


def keys_of(tree: Tree) -> frozenset[str]:
    return frozenset(leaf.key for leaf in leaves_of(tree) if isinstance(leaf, Leaf))


# --- what an operator means ------------------------------------------------------------------------------------


def level(leaf: Leaf, x: float) -> bool:
    """The condition as a state (crossings: the side of the line they cross to). NaN (no value yet): false."""
    if math.isnan(x):
        return False
    op, a = leaf.op, leaf.a
    if op in ("gt", "crosses_above"):
        return x > a
    if op == "gte":
        return x >= a
    if op in ("lt", "crosses_below"):
        return x < a
    if op == "lte":
        return x <= a
    inside = a <= x <= leaf.b
    if op == "enters_channel":
        return inside
    if op == "exits_channel":
        return not inside
    return False  # crosses: no side


def became_true(leaf: Leaf, p: float, c: float) -> bool:
    """The update p → c makes the condition true (for crossings: crosses)."""
    if math.isnan(p) or math.isnan(c):
        return False
    if leaf.op == "crosses":
        return p <= leaf.a < c or c < leaf.a <= p
    return not level(leaf, p) and level(leaf, c)


def relaxed(leaf: Leaf, x: float, band_pct: float) -> bool:
    """Still (nearly) true: the level with its threshold moved back by the hysteresis band. The rule re-arms once
    its relaxed conditions are false."""
    if math.isnan(x):
        return False
    op, a, b = leaf.op, leaf.a, leaf.b
    da, db = abs(a) * band_pct / 100, abs(b) * band_pct / 100
    if op in ("gt", "crosses_above"):
        return x > a - da
    if op == "gte":
        return x >= a - da
    if op in ("lt", "crosses_below"):
        return x < a + da
    if op == "lte":
        return x <= a + da
    if op == "crosses":
        return abs(x - a) < da
    if op == "enters_channel":
        return a - da <= x <= b + db
    return x < a + da or x > b - db  # exits_channel


def fire_thresholds(leaf: Leaf) -> list[tuple[Direction, float]]:
    """Where an update must cross for `became_true` to hold: (direction, threshold) for the index."""
    op, a, b = leaf.op, leaf.a, leaf.b
    table: dict[str, list[tuple[Direction, float]]] = {
        "gt": [(UP_STRICT, a)], "crosses_above": [(UP_STRICT, a)], "gte": [(UP_INCL, a)],
        "lt": [(DOWN_STRICT, a)], "crosses_below": [(DOWN_STRICT, a)], "lte": [(DOWN_INCL, a)],
        "crosses": [(UP_STRICT, a), (DOWN_STRICT, a)],
        "enters_channel": [(UP_INCL, a), (DOWN_INCL, b)], "exits_channel": [(DOWN_STRICT, a), (UP_STRICT, b)],
    }
    return table[op]


def rearm_thresholds(leaf: Leaf, band_pct: float) -> list[tuple[Direction, float]]:
    """Where an update must cross for `relaxed` to turn false."""
    op, a, b = leaf.op, leaf.a, leaf.b
    da, db = abs(a) * band_pct / 100, abs(b) * band_pct / 100
    table: dict[str, list[tuple[Direction, float]]] = {
        "gt": [(DOWN_INCL, a - da)], "crosses_above": [(DOWN_INCL, a - da)], "gte": [(DOWN_STRICT, a - da)],
        "lt": [(UP_INCL, a + da)], "crosses_below": [(UP_INCL, a + da)], "lte": [(UP_STRICT, a + da)],
        "crosses": [(UP_INCL, a + da), (DOWN_INCL, a - da)],
        "enters_channel": [(DOWN_STRICT, a - da), (UP_STRICT, b + db)],
        "exits_channel": [(UP_INCL, a + da), (DOWN_INCL, b - db)],
    }
    return table[op]


# --- a whole tree ------------------------------------------------------------------------------------------------


class Values:
    """What a tree reads for one symbol: the current value of every key, and the one key being updated."""

    __slots__ = ("current", "key", "prev", "event")

    def __init__(self, current: dict[str, float], key: str | None = None, prev: float = math.nan,
                 event: EventLeaf | None = None) -> None:
        self.current = current
        self.key = key
        self.prev = prev
        self.event = event

    def now(self, key: str) -> float:
        return self.current.get(key, math.nan)


def holds_before(tree: Tree, v: Values) -> bool:
    if isinstance(tree, Node):
        results = (holds_before(i, v) for i in tree.items)
        return all(results) if tree.all else any(results)
    if isinstance(tree, EventLeaf) or tree.op in EDGE_ONLY:
        return False
    return level(tree, v.prev if tree.key == v.key else v.now(tree.key))


def holds_after(tree: Tree, v: Values) -> bool:
    if isinstance(tree, Node):
        results = (holds_after(i, v) for i in tree.items)
        return all(results) if tree.all else any(results)
    if isinstance(tree, EventLeaf):
        return v.event is not None and _event_matches(tree, v.event)
    if tree.op in EDGE_ONLY:
        return tree.key == v.key and became_true(tree, v.prev, v.now(tree.key))
    return level(tree, v.now(tree.key))


def holds_relaxed(tree: Tree, v: Values, band_pct: float) -> bool:
    if isinstance(tree, Node):
        results = (holds_relaxed(i, v, band_pct) for i in tree.items)
        return all(results) if tree.all else any(results)
    if isinstance(tree, EventLeaf):
        return False
    return relaxed(tree, v.now(tree.key), band_pct)


def _event_matches(leaf: EventLeaf, event: EventLeaf) -> bool:
    return leaf.event == event.event and (leaf.detail is None or leaf.detail == event.detail)
