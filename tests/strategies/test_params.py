"""Param declaration, CLI parsing, validation, grids and random sampling; Strategy.resolve_params."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from marketpulse.marketdata.frame import CandleFrame
from marketpulse.strategies import REGISTRY, Action, BarState, Param, Signals, Strategy, get_strategy


def test_defaults_resolve_and_cli_strings_parse() -> None:
    cls = get_strategy("ut_bot")
    assert cls.resolve_params() == {"key_value": 1.0, "atr_period": 10, "heikin_ashi": False, "mode": "alerts"}
    got = cls.resolve_params({"key_value": "2", "atr_period": "14", "heikin_ashi": "true", "mode": "always_in"})
    assert got == {"key_value": 2.0, "atr_period": 14, "heikin_ashi": True, "mode": "always_in"}
    assert isinstance(got["key_value"], float) and isinstance(got["atr_period"], int)


@pytest.mark.parametrize(
    ("strategy", "overrides", "message"),
    [
        ("ut_bot", {"keyvalue": 2}, r"strategy 'ut_bot' has no parameter 'keyvalue'; known: key_value, atr_period"),
        ("ut_bot", {"atr_period": "ten"}, r"parameter 'atr_period': cannot read 'ten' as int"),
        ("ut_bot", {"atr_period": 0}, r"parameter 'atr_period': 0 is below the minimum 1"),
        ("ut_bot", {"atr_period": 2.5}, r"parameter 'atr_period': expected int, got 2.5"),
        ("ut_bot", {"key_value": 100.0}, r"parameter 'key_value': 100.0 is above the maximum 20.0"),
        ("ut_bot", {"heikin_ashi": "maybe"}, r"parameter 'heikin_ashi': cannot read 'maybe' as a boolean"),
        ("ut_bot", {"mode": "sometimes"}, r"parameter 'mode': 'sometimes' is not one of \['alerts', 'always_in'\]"),
        ("ut_bot", {"key_value": "nan"}, r"parameter 'key_value': nan is not a finite number"),
        ("ema_cross", {"fast": True}, r"parameter 'fast': expected int, got True"),
        ("ema_cross", {"fast": 30, "slow": 20}, r"'fast' \(30\) must be less than 'slow' \(20\)"),
        ("rsi_reversion", {"lower": 80}, r"'lower' \(80.0\) must be less than 'upper' \(70.0\)"),
    ],
)
def test_invalid_overrides_name_the_parameter(strategy: str, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_strategy(strategy).resolve_params(overrides)


def test_param_values_grids() -> None:
    assert Param("k", 2.0, low=1.0, high=2.0, step=0.25).values() == (1.0, 1.25, 1.5, 1.75, 2.0)
    assert Param("k", 0.3, low=0.1, high=0.5, step=0.1).values() == (0.1, 0.2, 0.3, 0.4, 0.5)  # no 0.30000000000000004
    assert Param("n", 10, low=5, high=15, step=5).values() == (5, 10, 15)
    assert Param("n", 10).values() == (10,)
    assert Param("flag", False).values() == (False, True)
    assert Param("m", "a", choices=("a", "b")).values() == ("a", "b")
    assert Param("n", 10, low=1, high=500, grid=(5, 10)).values() == (5, 10)


def test_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="parameter 'n': 50 is above the maximum 20"):
        Param("n", 50, low=1, high=20)
    with pytest.raises(ValueError, match="parameter 'n': 0 is below the minimum 1"):
        Param("n", 10, low=1, high=20, grid=(0, 5))
    with pytest.raises(TypeError, match="kind must be int, float, bool or str"):
        Param("x", [1])
    with pytest.raises(ValueError, match="low 5 > high 1"):
        Param("n", 3, low=5, high=1)


def test_every_declared_grid_is_valid_and_ema_cross_is_the_benchmark_sweep() -> None:
    for cls in REGISTRY.values():
        combos = list(cls.grid())
        assert combos, cls.name
        for combo in combos:
            assert cls.resolve_params(combo) == combo
    assert len(list(get_strategy("ema_cross").grid())) == 143  # fast 5..20 x slow 20..60 step 5, fast < slow
    fast_30 = list(get_strategy("ema_cross").grid({"fast": 30}))  # conflicts with slow's default, not its grid
    assert [p["slow"] for p in fast_30] == [35, 40, 45, 50, 55, 60]
    pinned = list(get_strategy("ut_bot").grid({"mode": "always_in", "heikin_ashi": "false"}))
    assert pinned and all(p["mode"] == "always_in" and p["heikin_ashi"] is False for p in pinned)


def test_random_sampling_stays_valid_and_reproducible() -> None:
    for cls in REGISTRY.values():
        rng = np.random.default_rng(3)
        draws = [cls.sample_params(rng) for _ in range(50)]
        for draw in draws:
            cls.resolve_params(draw)
        assert [cls.sample_params(np.random.default_rng(3)) for _ in range(1)][0] == draws[0]
    assert 0.5 <= Param("k", 1.0, low=0.5, high=3.0).sample(np.random.default_rng(1)) <= 3.0


class _Hold(Strategy):
    """A path-dependent example: buys when flat, sells after holding 3 bars (needs the engine's position)."""

    name = "hold_three"
    params = (Param("bars", 3, low=1, high=100),)

    def on_bar(self, i: int, candles: CandleFrame, state: BarState) -> Sequence[Action]:
        if state.position == 0:
            state.memo["since"] = i
            return ("long_entry",)
        return ("long_exit",) if i - state.memo["since"] >= state.params["bars"] else ()


def test_path_dependent_strategies_use_on_bar() -> None:
    assert _Hold.path_dependent and "hold_three" not in REGISTRY  # registering is explicit
    ones = np.ones(3)
    candles = CandleFrame(np.arange(3, dtype=np.int64), ones, ones, ones, ones, ones)
    state = BarState(params=_Hold.resolve_params())
    assert _Hold().on_bar(0, candles, state) == ("long_entry",)
    with pytest.raises(NotImplementedError, match="path-dependent"):
        _Hold().signals(candles, state.params)


def test_registering_needs_a_name_and_a_unique_one() -> None:
    from marketpulse.strategies import register

    class _Anonymous(Strategy):
        def signals(self, candles: CandleFrame, params: Mapping[str, Any]) -> Signals:
            return Signals.none(len(candles))

    with pytest.raises(TypeError, match="needs a class attribute `name`"):
        register(_Anonymous)

    class _Impostor(_Anonymous):
        name = "ema_cross"

    with pytest.raises(ValueError, match="'ema_cross' is already registered by EmaCross"):
        register(_Impostor)
    assert get_strategy("ema_cross").__name__ == "EmaCross"


def test_a_strategy_must_implement_signals_or_on_bar() -> None:
    with pytest.raises(TypeError, match="must implement signals\\(\\) or on_bar\\(\\)"):

        class _Nothing(Strategy):  # noqa: F841
            name = "nothing"


def test_vectorized_strategy_signature() -> None:
    class _Never(Strategy):
        name = "never"

        def signals(self, candles: CandleFrame, params: Mapping[str, Any]) -> Signals:
            return Signals.none(len(candles))

    assert not _Never.path_dependent and _Never.resolve_params() == {}
