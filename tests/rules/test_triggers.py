"""Trigger frequency, hysteresis and cooldown as a user sees them, on the engine with market times given to each
update (the injected clock): expected notifications are written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from marketpulse.rules.engine import RuleEngine, compile_rule_for
from marketpulse.rules.model import RuleIn

T0 = 1_760_126_400_000  # on a 1m and 1h boundary
MIN = 60_000


def engine_with(**fields: object) -> RuleEngine:
    body = {"name": "r", "symbol": "BTCUSDT",
            "conditions": {"all": [{"field": "price", "op": "crosses_above", "value": 100.0}]}} | fields
    engine = RuleEngine()
    engine.add(compile_rule_for("r", "o", RuleIn.model_validate(body)))
    return engine


def fires(engine: RuleEngine, walk: list[tuple[int, float]]) -> list[int]:
    """The times (ms after T0) of the updates that notified."""
    sym = np.array([engine.symbol("BTCUSDT")], np.int32)
    out = []
    for offset, price in walk:
        if len(engine.update("price", T0 + offset, sym, np.array([price]))):
            out.append(offset)
    return out


# Up across 100 every 10 s, back under it in between.
SAWTOOTH = [(i * 5_000, 99.0 if i % 2 == 0 else 101.0) for i in range(30)]


@pytest.mark.parametrize(("fields", "expected"), [
    ({"frequency": "every_time"}, [i * 5_000 for i in range(1, 30, 2)]),
    ({"frequency": "once_per_bar"}, [5_000, 65_000, 125_000]),  # the first crossing of each minute
    ({"frequency": "once_per_bar", "interval": "5m"}, [5_000]),
    ({"frequency": "once"}, [5_000]),
    ({"frequency": "every_time", "cooldown_s": 30}, [5_000, 35_000, 65_000, 95_000, 125_000]),
    ({"frequency": "every_time", "expires_at": T0 + 20_000}, [5_000, 15_000]),
])
def test_frequency_cooldown_and_expiry(fields: dict[str, object], expected: list[int]) -> None:
    assert fires(engine_with(**fields), SAWTOOTH) == expected


def test_once_removes_the_rule_from_the_engine() -> None:
    engine = engine_with(frequency="once")
    fires(engine, SAWTOOTH[:2])
    assert len(engine) == 0


def test_hysteresis_keeps_a_price_sitting_on_the_line_from_firing_again() -> None:
    # 1% band: after firing above 100, the rule re-arms only at or below 99.
    walk = [(0, 99.5), (1_000, 100.2), (2_000, 99.8), (3_000, 100.1), (4_000, 99.2), (5_000, 100.3),
            (6_000, 98.9), (7_000, 100.4)]
    assert fires(engine_with(frequency="every_time", hysteresis_pct=1.0), walk) == [1_000, 7_000]
    assert fires(engine_with(frequency="every_time"), walk) == [1_000, 3_000, 5_000, 7_000]


def test_a_level_condition_fires_when_it_becomes_true_not_while_it_stays_true() -> None:
    engine = engine_with(frequency="every_time",
                         conditions={"all": [{"field": "price", "op": "gt", "value": 100.0}]})
    assert fires(engine, [(0, 101.0), (1_000, 102.0), (2_000, 99.0), (3_000, 103.0), (4_000, 104.0)]) == [3_000]


def test_the_first_value_seen_is_no_crossing() -> None:
    """A restarted worker's first tick is not an update: nothing fires on it, whatever the level."""
    engine = engine_with(frequency="every_time", conditions={"all": [{"field": "price", "op": "gt", "value": 1}]})
    assert fires(engine, [(0, 50.0)]) == []


def test_compound_rules_fire_when_the_group_becomes_true() -> None:
    engine = engine_with(frequency="every_time", conditions={"all": [
        {"field": "price", "op": "gt", "value": 100.0},
        {"any": [{"field": "funding_rate", "op": "lt", "value": 0.0}, {"field": "funding_rate", "op": "gt",
                                                                        "value": 0.001}]}]})
    sym = np.array([engine.symbol("BTCUSDT")], np.int32)
    assert not len(engine.update("funding_rate", T0, sym, np.array([0.0005])))
    assert not len(engine.update("price", T0, sym, np.array([99.0])))
    assert not len(engine.update("price", T0 + 1, sym, np.array([101.0])))  # funding in between: group false
    fired = list(engine.update("funding_rate", T0 + 2, sym, np.array([-0.0001])))  # now the whole is true
    assert [(m.rule_id, m.key, m.value) for m in fired] == [("r", "funding_rate", -0.0001)]


def test_events_fire_their_rules_and_fills_only_their_owners() -> None:
    engine = RuleEngine()
    spike = {"name": "spike", "symbols": "*", "frequency": "every_time",
             "conditions": {"all": [{"event": "volume_spike", "alert_type": "SPIKE"}]}}
    fill = {"name": "fill", "symbol": "BTCUSDT", "frequency": "every_time",
            "conditions": {"all": [{"event": "paper_fill"}]}}
    engine.add(compile_rule_for("spike", "ana", RuleIn.model_validate(spike)))
    engine.add(compile_rule_for("fill", "ana", RuleIn.model_validate(fill)))
    from marketpulse.rules.conditions import EventLeaf

    hits = engine.on_event(EventLeaf("volume_spike", "SPIKE"), "ETHUSDT", T0, "a1")
    assert [(m.rule_id, m.symbol, m.event_key) for m in hits] == [("spike", "ETHUSDT", "volume_spike:a1")]
    assert engine.on_event(EventLeaf("volume_spike", "HALF_UPDATE"), "ETHUSDT", T0, "a2") == []
    assert engine.on_event(EventLeaf("paper_fill"), "BTCUSDT", T0, "f1", owner_id="bob") == []
    assert [m.rule_id for m in engine.on_event(EventLeaf("paper_fill"), "BTCUSDT", T0, "f2", owner_id="ana")] \
        == ["fill"]
