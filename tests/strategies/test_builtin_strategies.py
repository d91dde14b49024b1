"""Built-in strategies: registry, signal shape, no look-ahead (perturbing the future never changes the past)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from marketpulse.indicators import ut_bot
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.strategies import REGISTRY, Signals, Strategy, get_strategy
from support.walks import random_walk

SIGNAL_FIELDS = ("long_entries", "long_exits", "short_entries", "short_exits")

# Parameters that make each strategy trade often on 3,000 random-walk minutes, so the look-ahead test has
# signals on both sides of every cut.
ACTIVE_PARAMS: dict[str, dict[str, Any]] = {
    "ema_cross": {"fast": 5, "slow": 20},
    "ut_bot": {"key_value": 1.0, "atr_period": 10},
    "ut_bot_always_in_ha": {"key_value": 2.0, "atr_period": 5, "heikin_ashi": True, "mode": "always_in"},
    "rsi_reversion": {"period": 7, "lower": 35.0, "upper": 65.0},
    "bollinger_breakout": {"period": 20, "k": 1.5},
    "supertrend": {"period": 10, "multiplier": 2.0},
}


def strategy_of(case: str) -> type[Strategy]:
    return get_strategy("ut_bot" if case.startswith("ut_bot") else case)


@pytest.fixture(scope="module")
def candles() -> CandleFrame:
    return random_walk(3_000, seed=11)


def perturbed_after(candles: CandleFrame, start: int, seed: int) -> CandleFrame:
    """The same candles up to ``start - 1``, a different (still coherent) market from ``start`` on."""
    other = random_walk(len(candles), seed=seed, start=float(candles.close[start - 1]) * 1.05)
    cols = {}
    for name in ("open", "high", "low", "close", "volume"):
        col = getattr(candles, name).copy()
        col[start:] = getattr(other, name)[start:]
        cols[name] = col
    return CandleFrame(candles.time, **cols, symbol=candles.symbol, interval=candles.interval)


def test_registry_has_the_built_ins() -> None:
    assert sorted(REGISTRY) == ["bollinger_breakout", "ema_cross", "rsi_reversion", "supertrend", "ut_bot"]
    for name, cls in REGISTRY.items():
        assert cls.name == name and cls.params and not cls.path_dependent


def test_unknown_strategy_lists_known_names() -> None:
    with pytest.raises(ValueError, match=r"unknown strategy 'nope'; known: bollinger_breakout, ema_cross"):
        get_strategy("nope")


@pytest.mark.parametrize("case", sorted(ACTIVE_PARAMS))
def test_signals_shape_and_activity(candles: CandleFrame, case: str) -> None:
    cls = strategy_of(case)
    signals = cls().signals(candles, cls.resolve_params(ACTIVE_PARAMS[case]))
    for field in SIGNAL_FIELDS:
        arr = getattr(signals, field)
        assert arr.dtype == np.bool_ and arr.shape == (len(candles),)
    assert signals.long_entries.sum() >= 5 and signals.long_exits.sum() >= 5


@pytest.mark.parametrize("case", sorted(ACTIVE_PARAMS))
def test_no_look_ahead(candles: CandleFrame, case: str) -> None:
    cls = strategy_of(case)
    params = cls.resolve_params(ACTIVE_PARAMS[case])
    full = cls().signals(candles, params)
    for cut in (150, 1_000, 2_200, 2_999):
        changed = cls().signals(perturbed_after(candles, cut, seed=cut), params)
        truncated = cls().signals(candles.slice(0, cut), params)
        for field in SIGNAL_FIELDS:
            past = getattr(full, field)[:cut]
            np.testing.assert_array_equal(getattr(changed, field)[:cut], past, err_msg=f"{case}.{field} @ {cut}")
            np.testing.assert_array_equal(getattr(truncated, field), past, err_msg=f"{case}.{field} cut {cut}")
        # The perturbation really changed the market: some signal after the cut differs.
        if cut < 2_999:
            assert any(
                not np.array_equal(getattr(changed, f)[cut:], getattr(full, f)[cut:]) for f in SIGNAL_FIELDS
            ), f"{case}: perturbing from {cut} changed nothing; the test would prove nothing"


@pytest.mark.parametrize("case", sorted(ACTIVE_PARAMS))
def test_short_history_gives_no_signals_not_errors(candles: CandleFrame, case: str) -> None:
    cls = strategy_of(case)
    for n in (0, 1, 3):
        signals = cls().signals(candles.slice(0, n), cls.resolve_params(ACTIVE_PARAMS[case]))
        assert len(signals) == n and not any(getattr(signals, f).any() for f in SIGNAL_FIELDS)


def test_ut_bot_modes(candles: CandleFrame) -> None:
    cls = get_strategy("ut_bot")
    _, buy, sell = ut_bot(candles.open, candles.high, candles.low, candles.close, 1.5, 10)
    alerts = cls().signals(candles, cls.resolve_params({"key_value": 1.5}))
    always = cls().signals(candles, cls.resolve_params({"key_value": 1.5, "mode": "always_in"}))
    np.testing.assert_array_equal(alerts.long_entries, buy)
    np.testing.assert_array_equal(alerts.long_exits, sell)
    assert not alerts.short_entries.any() and not alerts.short_exits.any()  # alerts: long or flat
    # always_in (QuantNomad): every buy closes the short and opens a long, every sell the reverse.
    np.testing.assert_array_equal(always.long_entries, buy)
    np.testing.assert_array_equal(always.short_exits, buy)
    np.testing.assert_array_equal(always.short_entries, sell)
    np.testing.assert_array_equal(always.long_exits, sell)
    assert not (buy & sell).any()


def test_ema_cross_signals_are_the_crossings(candles: CandleFrame) -> None:
    from marketpulse.indicators import ema

    signals = get_strategy("ema_cross")().signals(candles, {"fast": 5, "slow": 20})
    above = ema(candles.close, 5) > ema(candles.close, 20)
    idx = np.flatnonzero(signals.long_entries)
    assert len(idx) > 0 and above[idx].all() and not above[idx - 1].any()
    np.testing.assert_array_equal(signals.long_exits, signals.short_entries)


def test_supertrend_signals_follow_direction_flips(candles: CandleFrame) -> None:
    from marketpulse.indicators import supertrend

    _, direction = supertrend(candles.high, candles.low, candles.close, 10, 2.0)
    signals = get_strategy("supertrend")().signals(candles, {"period": 10, "multiplier": 2.0})
    np.testing.assert_array_equal(np.flatnonzero(signals.long_entries), np.flatnonzero(np.diff(direction) == -2) + 1)


def test_signals_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="short_exits"):
        Signals(np.zeros(3, bool), np.zeros(3, bool), np.zeros(3, bool), np.zeros(2, bool))
    assert len(Signals.none(4)) == 4
    only_long = Signals(*(np.ones(2, bool) for _ in range(4))).long_only()
    assert only_long.long_entries.all() and not only_long.short_entries.any()
