"""SuperTrend and UT Bot against a deliberately naive, bar-by-bar transcription of the Pine scripts.

The reference below is written the way Pine reads: ``None`` is ``na``, ``nz`` turns it into 0, comparisons with
``na`` are false, and ``math.max`` with ``na`` is ``na``. It shares no code with the numba kernels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

import marketpulse.indicators as ind
from marketpulse.marketdata.frame import CandleFrame

Na = float | None


def nz(x: Na) -> float:
    return 0.0 if x is None else x


def gt(a: Na, b: Na) -> bool:
    return a is not None and b is not None and a > b


def lt(a: Na, b: Na) -> bool:
    return a is not None and b is not None and a < b


def le(a: Na, b: Na) -> bool:
    return a is not None and b is not None and a <= b


def pine_max(a: Na, b: Na) -> Na:
    return None if a is None or b is None else max(a, b)


def pine_min(a: Na, b: Na) -> Na:
    return None if a is None or b is None else min(a, b)


def sub(a: Na, b: Na) -> Na:
    return None if a is None or b is None else a - b


def add(a: Na, b: Na) -> Na:
    return None if a is None or b is None else a + b


def prev(series: Sequence[Na], i: int) -> Na:
    return series[i - 1] if i > 0 else None


def crossover(x: Sequence[Na], y: Sequence[Na], i: int) -> bool:
    return gt(x[i], y[i]) and le(prev(x, i), prev(y, i))


def pine_atr(high: list[float], low: list[float], close: list[float], length: int) -> list[Na]:
    """ta.atr: trueRange = na(high[1]) ? high - low : max(...); ta.rma seeded by ta.sma of the first length."""
    tr = [high[0] - low[0]] + [
        max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1])) for i in range(1, len(high))
    ]
    alpha = 1 / length
    out: list[Na] = []
    for i in range(len(tr)):
        if prev(out, i) is None:
            out.append(sum(tr[i - length + 1 : i + 1]) / length if i >= length - 1 else None)
        else:
            out.append(alpha * tr[i] + (1 - alpha) * nz(prev(out, i)))
    return out


def pine_ut_bot(
    o: list[float], h: list[float], lo: list[float], c: list[float], a: float, period: int, ha: bool
) -> tuple[list[Na], list[bool], list[bool]]:
    x_atr = pine_atr(h, lo, c, period)
    src = [(o[i] + h[i] + lo[i] + c[i]) / 4 for i in range(len(c))] if ha else list(c)
    stop: list[Na] = []
    for i in range(len(c)):
        atr_i = x_atr[i]
        n_loss = None if atr_i is None else a * atr_i
        p = nz(prev(stop, i))
        if gt(src[i], p) and gt(prev(src, i), p):
            stop.append(pine_max(p, sub(src[i], n_loss)))
        elif lt(src[i], p) and lt(prev(src, i), p):
            stop.append(pine_min(p, add(src[i], n_loss)))
        else:
            stop.append(sub(src[i], n_loss) if gt(src[i], p) else add(src[i], n_loss))
    ema1 = src  # ema(src, 1): alpha = 1
    buy = [gt(src[i], stop[i]) and crossover(ema1, stop, i) for i in range(len(c))]
    sell = [lt(src[i], stop[i]) and crossover(stop, ema1, i) for i in range(len(c))]
    return stop, buy, sell


def pine_supertrend(
    h: list[float], lo: list[float], c: list[float], factor: float, period: int
) -> tuple[list[Na], list[Na]]:
    atr = pine_atr(h, lo, c, period)
    lower_s: list[Na] = []
    upper_s: list[Na] = []
    st_s: list[Na] = []
    dir_s: list[float] = []
    for i in range(len(c)):
        src = (h[i] + lo[i]) / 2
        atr_i = atr[i]
        band = None if atr_i is None else factor * atr_i
        upper, lower = add(src, band), sub(src, band)
        prev_lower, prev_upper = nz(prev(lower_s, i)), nz(prev(upper_s, i))
        lower = lower if gt(lower, prev_lower) or lt(prev(c, i), prev_lower) else prev_lower
        upper = upper if lt(upper, prev_upper) or gt(prev(c, i), prev_upper) else prev_upper
        prev_st = prev(st_s, i)
        if prev(atr, i) is None:
            direction = 1.0
        elif prev_st is not None and prev_st == prev_upper:
            direction = -1.0 if gt(c[i], upper) else 1.0
        else:
            direction = 1.0 if lt(c[i], lower) else -1.0
        lower_s.append(lower)
        upper_s.append(upper)
        st_s.append(lower if direction == -1 else upper)
        dir_s.append(direction)
    line = [st if a is not None else None for st, a in zip(st_s, atr, strict=True)]
    return line, [d if a is not None else None for d, a in zip(dir_s, atr, strict=True)]  # type: ignore[misc]


def as_array(values: Sequence[Na]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values])


@pytest.fixture(params=["walk", "btc"])
def sample(request: pytest.FixtureRequest) -> CandleFrame:
    frame: CandleFrame = request.getfixturevalue(request.param)
    return frame.slice(0, 4000)  # the pure-Python reference is slow; 4000 bars still flip dozens of times


@pytest.mark.parametrize(
    ("key_value", "atr_period", "heikin_ashi"), [(1.0, 10, False), (2.0, 1, False), (3.5, 14, True)]
)
def test_ut_bot_matches_pine(sample: CandleFrame, key_value: float, atr_period: int, heikin_ashi: bool) -> None:
    s = sample
    ref_stop, ref_buy, ref_sell = pine_ut_bot(
        s.open.tolist(), s.high.tolist(), s.low.tolist(), s.close.tolist(), key_value, atr_period, heikin_ashi
    )
    stop, buy, sell = ind.ut_bot(s.open, s.high, s.low, s.close, key_value, atr_period, heikin_ashi)
    np.testing.assert_allclose(stop, as_array(ref_stop), rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(buy, ref_buy)
    np.testing.assert_array_equal(sell, ref_sell)
    assert buy.sum() >= 5 and sell.sum() >= 5  # the comparison exercised real flips
    assert np.isnan(stop[: atr_period - 1]).all() and not np.isnan(stop[atr_period - 1])


@pytest.mark.parametrize(("period", "multiplier"), [(10, 3.0), (7, 1.0), (2, 0.5)])
def test_supertrend_matches_pine(sample: CandleFrame, period: int, multiplier: float) -> None:
    s = sample
    ref_line, ref_dir = pine_supertrend(s.high.tolist(), s.low.tolist(), s.close.tolist(), multiplier, period)
    line, direction = ind.supertrend(s.high, s.low, s.close, period, multiplier)
    np.testing.assert_allclose(line, as_array(ref_line), rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(direction, as_array(ref_dir))
    flips = np.count_nonzero(np.diff(direction[period:]))
    assert flips >= 5
    assert np.isnan(line[: period - 1]).all() and direction[period - 1] == 1.0  # Pine starts every series at +1


def test_tv_atr_matches_pine(sample: CandleFrame) -> None:
    s = sample
    ref = pine_atr(s.high.tolist(), s.low.tolist(), s.close.tolist(), 10)
    np.testing.assert_allclose(ind.tv_atr(s.high, s.low, s.close, 10), as_array(ref), rtol=1e-12, equal_nan=True)
