"""The detector's rules on hand-built candle sequences (expected numbers computed by hand in the comments)."""

from __future__ import annotations

import pytest

from marketpulse.detection.models import VolumeAlert
from marketpulse.detection.volume_spike import VolumeSpikeDetector
from marketpulse.marketdata.models import Candle, MarketRow

MIN = 60_000
HOUR = 3_600_000
H = 1_760_126_400_000  # 2025-10-10 20:00 UTC: the hour under test; H - HOUR is the baseline hour
PREV_MINUTE_QV = 20_000.0  # 60 minutes × $20k = $1.2M baseline, so the 3× line is exactly $3.6M


def candle(minute: int, qv: float, *, symbol: str = "BTCUSDT", open_: float = 100.0, close: float = 100.0,
           interval: str = "1m", base: int = H) -> Candle:
    return Candle(symbol, interval, base + minute * MIN, open_, max(open_, close), min(open_, close), close, 1.0, qv)


def detector_with_baseline(symbol: str = "BTCUSDT", **kwargs: float) -> VolumeSpikeDetector:
    det = VolumeSpikeDetector(**kwargs)
    for m in range(60):
        det.on_candle(candle(m, PREV_MINUTE_QV, symbol=symbol, base=H - HOUR))
    return det


def scan(det: VolumeSpikeDetector, minute: int, base: int = H) -> list[VolumeAlert]:
    return det.scan(base + minute * MIN)


def kinds(alerts: list[VolumeAlert]) -> list[tuple[str, str]]:
    return [(a.symbol, a.alert_type) for a in alerts]


def test_scan_at_the_hour_sees_nothing_of_that_hour() -> None:
    det = detector_with_baseline()
    det.on_candle(candle(0, 100e6))  # H:00–H:01 closes at H:01, after the H:00 scan
    assert scan(det, 0) == []
    [spike] = scan(det, 5)
    assert spike.alert_type == "SPIKE" and spike.current_volume == 100e6
    assert spike.timestamp == H + 5 * MIN and spike.hour_timestamp == H and not spike.is_update


def test_scan_at_h05_counts_minutes_0_to_4_and_not_the_candle_closing_at_h06() -> None:
    det = detector_with_baseline()
    for m in range(5):
        det.on_candle(candle(m, 700_000.0))  # 5 × $0.7M = $3.5M < $3.6M
    det.on_candle(candle(5, 10e6))  # already delivered, but closes at H:06
    assert scan(det, 5) == []
    [spike] = scan(det, 10)  # minutes 0–5 closed: 3.5M + 10M
    assert spike.current_volume == 13.5e6
    assert spike.previous_volume == 1.2e6
    assert spike.volume_ratio == pytest.approx(11.25)


def test_ratio_threshold_is_inclusive() -> None:
    below = detector_with_baseline()
    below.on_candle(candle(0, 3_599_999.0))
    assert scan(below, 5) == []
    exact = detector_with_baseline()
    exact.on_candle(candle(0, 3_600_000.0))  # exactly 3 × $1.2M
    [spike] = scan(exact, 5)
    assert spike.volume_ratio == 3.0


def test_three_million_floor_is_inclusive() -> None:
    det = VolumeSpikeDetector(ratio=3.0, min_quote_volume=3e6)
    for m in range(60):
        det.on_candle(candle(m, 1_000.0, base=H - HOUR))  # $60k baseline: any hour above $180k is 3×
    det.on_candle(candle(0, 2_999_999.0))
    assert scan(det, 5) == []  # ratio 50×, but under $3M
    det.on_candle(candle(5, 1.0))  # now exactly $3,000,000
    [spike] = scan(det, 10)
    assert spike.current_volume == 3e6 and spike.volume_ratio == pytest.approx(50.0)


def test_one_spike_per_symbol_hour_and_a_new_one_next_hour() -> None:
    det = detector_with_baseline()
    det.on_candle(candle(0, 10e6))
    for m in range(1, 5):
        det.on_candle(candle(m, 0.0))
    assert kinds(scan(det, 5)) == [("BTCUSDT", "SPIKE")]
    for m in range(5, 30):
        det.on_candle(candle(m, 1e6))
    assert scan(det, 10) == [] and scan(det, 15) == [] and scan(det, 25) == []
    for m in range(30, 60):
        det.on_candle(candle(m, 0.0))  # hour H totals 10M + 25 × 1M = 35M
    assert kinds(scan(det, 60)) == [("BTCUSDT", "FULL_UPDATE")]
    det.on_candle(candle(60, 105e6))  # next hour: 3 × 35M = 105M, exactly at the line
    assert kinds(scan(det, 65)) == [("BTCUSDT", "SPIKE")]


def spike_at(minute: int) -> VolumeSpikeDetector:
    """A spike first raised by the scan at H:`minute`: baseline $1.2M, $4M arriving in the minute before the scan."""
    det = detector_with_baseline()
    for m in range(60):
        det.on_candle(candle(m, 4e6 if m == minute - 1 else 0.0))
    for scan_minute in range(0, minute, 5):
        assert scan(det, scan_minute) == [], scan_minute
    assert kinds(scan(det, minute)) == [("BTCUSDT", "SPIKE")]
    return det


@pytest.mark.parametrize(("minute", "half_update"), [(5, True), (20, True), (25, False), (50, False)])
def test_half_update_at_30_only_for_spikes_first_raised_at_00_to_20(minute: int, half_update: bool) -> None:
    det = spike_at(minute)
    alerts = [a for m in range(minute + 5, 60, 5) for a in scan(det, m)]
    if half_update:
        [half] = alerts
        assert half.alert_type == "HALF_UPDATE" and half.is_update
        assert half.timestamp == H + 30 * MIN and half.hour_timestamp == H
        assert half.current_volume == 4e6 and half.previous_volume == 1.2e6
    else:
        assert alerts == []


def test_half_update_carries_the_volume_so_far() -> None:
    det = detector_with_baseline()
    det.on_candle(candle(0, 5e6))
    assert kinds(scan(det, 5)) == [("BTCUSDT", "SPIKE")]
    for m in range(1, 40):
        det.on_candle(candle(m, 100_000.0))  # minutes 1–29 closed by H:30 → 5M + 29 × 0.1M = 7.9M
    [half] = [a for m in range(10, 35, 5) for a in scan(det, m)]
    assert half.alert_type == "HALF_UPDATE"
    assert half.current_volume == pytest.approx(7.9e6)
    assert half.volume_ratio == pytest.approx(7.9e6 / 1.2e6)


@pytest.mark.parametrize(("minute", "full_update"), [(5, True), (50, True), (55, False)])
def test_full_update_at_next_hour_unless_first_raised_at_55(minute: int, full_update: bool) -> None:
    det = spike_at(minute)
    for m in range(minute + 5, 60, 5):
        scan(det, m)
    det.on_candle(candle(59, 2e6))  # the hour's last minute (closes at H+1:00): 4M + 2M = 6M complete
    alerts = scan(det, 60)
    if full_update:
        [full] = alerts
        assert full.alert_type == "FULL_UPDATE" and full.is_update
        assert full.timestamp == H + HOUR and full.hour_timestamp == H
        assert full.current_volume == 6e6 and full.previous_volume == 1.2e6 and full.volume_ratio == 5.0
    else:
        assert alerts == []


def test_direction_bullish_above_the_hours_open_bearish_at_or_below() -> None:
    det = detector_with_baseline()
    det.on_candle(candle(0, 5e6, open_=100.0, close=101.0))
    det.on_candle(candle(1, 0.0, open_=101.0, close=100.5))
    [spike] = scan(det, 5)
    assert spike.candle_direction == "bullish" and spike.price == 100.5  # last close 100.5 > hour open 100

    flat = detector_with_baseline()
    flat.on_candle(candle(0, 5e6, open_=100.0, close=102.0))
    flat.on_candle(candle(1, 0.0, open_=102.0, close=100.0))
    [spike] = scan(flat, 5)
    assert spike.candle_direction == "bearish"  # 100 is not above the open of 100


def test_newer_market_price_and_funding_are_used() -> None:
    det = detector_with_baseline()
    det.on_candle(candle(0, 5e6, open_=100.0, close=110.0))
    det.on_market_rows([MarketRow("BTCUSDT", H + 3 * MIN, 99.0, -1.0, 1e9, funding_rate=0.0001)])
    [spike] = scan(det, 5)
    assert spike.price == 99.0 and spike.candle_direction == "bearish" and spike.funding_rate == 0.0001

    stale = detector_with_baseline()
    stale.on_candle(candle(0, 5e6, open_=100.0, close=110.0))
    stale.on_market_rows([MarketRow("BTCUSDT", H - 10 * MIN, 90.0, -1.0, 1e9, funding_rate=0.0002)])
    [spike] = scan(stale, 5)
    assert spike.price == 110.0 and spike.candle_direction == "bullish" and spike.funding_rate == 0.0002


def test_incomplete_baseline_hour_raises_nothing() -> None:
    det = VolumeSpikeDetector()
    for m in range(30, 60):  # started mid-way through the previous hour
        det.on_candle(candle(m, PREV_MINUTE_QV, base=H - HOUR))
    det.on_candle(candle(0, 50e6))
    assert scan(det, 5) == []


def test_redelivered_candle_is_not_counted_twice() -> None:
    det = detector_with_baseline()
    det.on_candle(candle(0, 2e6))
    det.on_candle(candle(0, 2e6))  # at-least-once bus: same candle again → still $2M, under the $3.6M line
    assert scan(det, 5) == []


def test_only_usdt_symbols_and_several_symbols_sorted() -> None:
    det = detector_with_baseline("ETHUSDT")
    for sym in ("BTCUSDT", "ETHBTC"):
        for m in range(60):
            det.on_candle(candle(m, PREV_MINUTE_QV, symbol=sym, base=H - HOUR))
    for sym in ("ETHUSDT", "BTCUSDT", "ETHBTC"):
        det.on_candle(candle(0, 9e6, symbol=sym))
    assert kinds(scan(det, 5)) == [("BTCUSDT", "SPIKE"), ("ETHUSDT", "SPIKE")]
    assert det.tracked_symbols() == 2


def test_hourly_candles_evaluated_once_at_close_spike_only() -> None:
    det = VolumeSpikeDetector()
    det.on_candle(candle(-60, 2e6, interval="1h"))
    det.on_candle(candle(0, 8e6, open_=10.0, close=9.0, interval="1h"))  # hour H: 4× baseline, closes at H+1:00
    assert [a for m in range(0, 60, 5) for a in scan(det, m)] == []
    [spike] = scan(det, 60)
    assert (spike.alert_type, spike.hour_timestamp, spike.timestamp) == ("SPIKE", H, H + HOUR)
    assert spike.volume_ratio == 4.0 and spike.candle_direction == "bearish"
    det.on_candle(candle(60, 1e6, interval="1h"))
    assert [a for m in range(65, 125, 5) for a in scan(det, m)] == []  # no updates for hourly data


def test_memory_keeps_only_recent_hours() -> None:
    det = detector_with_baseline()
    for hour in range(6):
        for m in range(60):
            det.on_candle(candle(hour * 60 + m, 1.0))
        det.scan(H + (hour + 1) * HOUR)
    state = det._symbols["BTCUSDT"]
    assert sorted(state.hours) == [H + 5 * HOUR]  # the scan at H+6:00 keeps hour H+5, the new previous hour


def test_scan_must_be_on_a_five_minute_boundary() -> None:
    with pytest.raises(ValueError, match="5-minute"):
        VolumeSpikeDetector().scan(H + MIN)
