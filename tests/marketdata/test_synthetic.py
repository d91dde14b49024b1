"""The seeded synthetic market: exact minute aggregation, determinism, and the statistics the detector needs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from marketpulse.marketdata.klines_csv import read_klines
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.sample import CASCADE_HOUR_MS, usdm_perp_1h_path
from marketpulse.marketdata.synthetic import (
    HOUR_MS,
    SyntheticSpec,
    split_exactly,
    synthesize_derivatives,
    synthesize_minutes,
    synthetic_hours,
    synthetic_universe,
    tick_price,
    volume_seasonality,
)


@pytest.fixture(scope="module")
def sample_hours() -> list[Candle]:
    """Real hours: every symbol's cascade hour and the hours around it (rising, falling, flat, tiny prices)."""
    window = (CASCADE_HOUR_MS - HOUR_MS, CASCADE_HOUR_MS, CASCADE_HOUR_MS + 40 * HOUR_MS)
    return [c for c in read_klines(usdm_perp_1h_path()) if c.open_time in window]


def test_minutes_aggregate_exactly_to_the_hour(sample_hours: list[Candle]) -> None:
    assert len(sample_hours) > 1500
    for hour in sample_hours:
        bars = synthesize_minutes(hour, seed=7, precision=8)
        minutes = bars.candles()
        assert [m.open_time for m in minutes] == [hour.open_time + i * 60_000 for i in range(60)]
        assert minutes[0].open == hour.open and minutes[-1].close == hour.close
        assert max(m.high for m in minutes) == hour.high and min(m.low for m in minutes) == hour.low
        # exact in every summation order a consumer might use
        assert sum(m.volume for m in minutes) == hour.volume == math.fsum(bars.volume) == float(np.sum(bars.volume))
        assert sum(m.quote_volume for m in minutes) == hour.quote_volume == float(np.sum(bars.quote_volume[::-1]))
        for m in minutes:
            assert m.low <= min(m.open, m.close) <= max(m.open, m.close) <= m.high
            assert m.volume >= 0 and m.quote_volume >= 0
        # each minute opens where the previous closed: a continuous path
        assert all(a.close == b.open for a, b in zip(minutes, minutes[1:], strict=False))


def test_path_order_follows_direction(sample_hours: list[Candle]) -> None:
    for hour in sample_hours[:400]:
        bars = synthesize_minutes(hour, seed=7)
        low_at, high_at = int(np.argmin(bars.low)), int(np.argmax(bars.high))
        if hour.close >= hour.open:
            assert low_at <= high_at, hour
        else:
            assert high_at <= low_at, hour


def test_minutes_are_deterministic_per_seed(sample_hours: list[Candle]) -> None:
    hour = sample_hours[0]
    a, b = synthesize_minutes(hour, seed=7), synthesize_minutes(hour, seed=7)
    c = synthesize_minutes(hour, seed=8)
    assert a.candles() == b.candles()
    assert a.candles() != c.candles()


@pytest.mark.parametrize("total", [1e-9, 0.3, 7.0, 123456.789, 14932511962.538403, 2.0**60 + 12345.0])
def test_split_exactly_sums_back_in_any_order(total: float) -> None:
    rng = np.random.default_rng(1)
    parts = split_exactly(total, rng.lognormal(0, 1, 60))
    assert (parts >= 0).all()
    assert sum(parts) == total == sum(parts[::-1]) == math.fsum(parts) == float(np.sum(parts))
    assert sum(sorted(parts)) == total


def test_split_of_zero_is_zero() -> None:
    assert not split_exactly(0.0, np.ones(60)).any()


def test_tick_price_visits_the_extremes_in_order() -> None:
    rising = [tick_price(10, 12, 9, 11, f) for f in (0, 1 / 3, 2 / 3, 0.999999)]
    assert rising[0] == 10 and rising[1] == 9 and rising[2] == 12 and rising[3] == pytest.approx(11, abs=1e-4)
    falling = [tick_price(11, 12, 9, 10, f) for f in (1 / 3, 2 / 3)]
    assert falling == [12, 9]


SPEC = SyntheticSpec("SYN001USDT", 1.2345, 2_000_000.0, 0.012, 4)
MONDAY = 1_759_708_800_000  # 2025-10-06 00:00 UTC


def test_synthetic_hours_are_deterministic_and_consistent() -> None:
    a = synthetic_hours(SPEC, MONDAY, 24 * 28, seed=3)
    b = synthetic_hours(SPEC, MONDAY, 24 * 28, seed=3)
    assert np.array_equal(a.close, b.close) and np.array_equal(a.volume, b.volume)
    assert not np.array_equal(a.close, synthetic_hours(SPEC, MONDAY, 24 * 28, seed=4).close)
    assert a.open[0] == SPEC.start_price and np.array_equal(a.open[1:], a.close[:-1])
    assert (a.low <= np.minimum(a.open, a.close)).all() and (a.high >= np.maximum(a.open, a.close)).all()
    assert (a.low > 0).all() and (a.volume > 0).all()
    assert np.array_equal(np.diff(a.time), np.full(len(a) - 1, HOUR_MS))


def test_synthetic_returns_are_heavy_tailed() -> None:
    frame = synthetic_hours(SPEC, MONDAY, 24 * 365, seed=5)
    r = np.log(frame.close / frame.open)
    kurtosis = float(np.mean((r - r.mean()) ** 4) / np.var(r) ** 2)
    assert kurtosis > 4.5  # a normal distribution has 3


def test_volume_has_intraday_seasonality_and_a_weekend_dip() -> None:
    days = 7 * 16
    frame = synthetic_hours(SPEC, MONDAY, 24 * days, seed=11)
    quote = frame.volume * frame.close
    hour_of_day = (frame.time // HOUR_MS) % 24
    weekday = (frame.time // 86_400_000 + 3) % 7
    assert np.median(quote[hour_of_day == 14]) > 1.4 * np.median(quote[hour_of_day == 4])
    assert np.median(quote[weekday >= 5]) < 0.8 * np.median(quote[weekday < 5])
    assert volume_seasonality(np.array([MONDAY + 14 * HOUR_MS]))[0] > 1.3


def test_universe_has_genuine_surges_over_the_floor() -> None:
    surges = 0
    for spec in synthetic_universe(60, seed=1):
        frame = synthetic_hours(spec, MONDAY, 24 * 30, seed=1)
        quote = frame.volume * frame.close
        surges += int(np.sum((quote[1:] >= 3 * quote[:-1]) & (quote[1:] >= 3_000_000)))
    assert surges >= 5


def test_universe_names_are_deterministic_and_not_real() -> None:
    specs = synthetic_universe(5, seed=2)
    assert [s.symbol for s in specs] == [f"SYN00{i}USDT" for i in range(1, 6)]
    assert specs == synthetic_universe(5, seed=2)


def test_derivatives_funding_around_a_basis_point_and_oi_follows_price() -> None:
    frame = synthetic_hours(SPEC, MONDAY, 24 * 60, seed=9)
    d = synthesize_derivatives(frame, seed=9)
    assert 0.00003 < float(np.median(d.funding_rate)) < 0.0002
    assert np.abs(d.funding_rate).max() <= 0.003
    assert (d.open_interest_contracts > 0).all()
    usd = d.open_interest_contracts * frame.close
    hourly_quote = float(np.median(frame.volume * frame.close))
    assert 1 < float(np.median(usd)) / hourly_quote < 100
    continued = synthesize_derivatives(frame, seed=9, start_funding=0.0005, start_contracts=42.0)
    assert continued.open_interest_contracts[0] == pytest.approx(42.0, rel=0.05)


def test_minutes_move_between_the_extremes_instead_of_resting_on_them(sample_hours: list[Candle]) -> None:
    """The issue's ETHUSDT 02:05-02:13: open = low = close in six of nine minutes, so every order filled at that one
    price. A minute now sits flat on an extreme only at a turn of the path, rarely elsewhere."""
    flat_on_extreme = minutes = 0
    for hour in sample_hours:
        if hour.high - hour.low < 1e-9 * hour.high:
            continue  # a flat hour has nowhere else to be
        bars = synthesize_minutes(hour, seed=7, precision=8)
        for m in bars.candles():
            minutes += 1
            on_low = m.open == m.close == m.low == hour.low
            on_high = m.open == m.close == m.high == hour.high
            flat_on_extreme += on_low or on_high
        distinct = len(set(bars.close.tolist()))
        if (hour.high - hour.low) * 1e8 >= 1000:  # room for many prices at the 8 decimals asked for
            assert distinct >= 30, (hour, distinct)  # the path moves: most minutes close at a price of their own
    assert minutes > 50_000
    assert flat_on_extreme / minutes < 0.01


def test_volume_follows_the_path(sample_hours: list[Candle]) -> None:
    """The minutes that move the most trade more than the quiet ones (on average over many hours)."""
    busy, quiet = [], []
    for hour in sample_hours[:300]:
        bars = synthesize_minutes(hour, seed=7)
        moves = np.abs(bars.close - bars.open)
        order = np.argsort(moves)
        quiet.append(float(np.mean(bars.volume[order[:15]])))
        busy.append(float(np.mean(bars.volume[order[-15:]])))
    assert np.mean(busy) > 2 * np.mean(quiet)
