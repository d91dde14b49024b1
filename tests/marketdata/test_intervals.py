"""The one Interval type: its set, lengths, UTC flooring, and refusals."""

from __future__ import annotations

import msgspec
import pytest
from pydantic import BaseModel, ValidationError

from marketpulse.marketdata.intervals import Interval, IntervalField, UnknownIntervalError, interval_of_ms
from marketpulse.marketdata.models import Candle

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000


def test_the_set_is_binances_intervals_that_divide_a_day() -> None:
    assert [i.value for i in Interval] == ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"]
    assert [Interval.parse(i).ms for i in ("1m", "5m", "1h", "4h", "1d")] == [MINUTE, 5 * MINUTE, HOUR, 4 * HOUR, DAY]
    assert all(DAY % i.ms == 0 for i in Interval)


@pytest.mark.parametrize("bad", ["7m", "2w", "1w", "3d", "1M", "1H", " 1h", "", "1y", "60s", 60_000, None, True])
def test_anything_else_is_refused_naming_the_accepted_set(bad: object) -> None:
    with pytest.raises(UnknownIntervalError, match=r"unknown interval .* \(use one of 1m, 3m, 5m, .*, 1d\)"):
        Interval.parse(bad)


def test_floor_and_close_time_are_utc_aligned() -> None:
    t = 1_704_067_200_000 + 5 * HOUR + 17 * MINUTE + 3_000  # 2024-01-01 05:17:03
    assert Interval.H4.floor(t) == 1_704_067_200_000 + 4 * HOUR
    assert Interval.M15.floor(t) == 1_704_067_200_000 + 5 * HOUR + 15 * MINUTE
    assert Interval.H1.close_time(Interval.H1.floor(t)) == 1_704_067_200_000 + 6 * HOUR
    assert Interval.H1.holds(Interval.M1) == 60
    with pytest.raises(ValueError, match="whole multiple"):
        Interval.M5.holds(Interval.M3)


def test_interval_of_ms_names_only_known_lengths() -> None:
    assert interval_of_ms(HOUR) is Interval.H1
    assert interval_of_ms(7 * MINUTE) is None


def test_pydantic_and_msgspec_refuse_with_the_same_message() -> None:
    class Body(BaseModel):
        interval: IntervalField

    assert Body(interval="4h").interval is Interval.H4  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as pyd:
        Body(interval="7m")  # type: ignore[arg-type]
    raw = {"symbol": "BTCUSDT", "interval": "7m", "open_time": 0, "open": 1.0, "high": 1.0, "low": 1.0,
           "close": 1.0, "volume": 1.0, "quote_volume": 1.0}
    with pytest.raises(msgspec.ValidationError) as msg:
        msgspec.convert(raw, Candle)
    expected = str(UnknownIntervalError("7m"))
    assert expected in str(pyd.value) and expected in str(msg.value)
