"""The chart's pure core: parsing studies, the series' shapes, merging library and store candles."""

from __future__ import annotations

import numpy as np
import pytest

from marketpulse.charts.core import Columns, Study, compute, merge_candles, parse_studies
from marketpulse.marketdata.models import Candle

HOUR = 3_600_000
T0 = 1_760_126_400_000


def test_parse_fills_defaults_and_drops_duplicates() -> None:
    assert parse_studies("EMA:20, ema:20,bb,supertrend:7") == [
        Study("ema", (20.0,)), Study("bb", (20.0, 2.0)), Study("supertrend", (7.0, 3.0))]
    assert [s.id for s in parse_studies("utbot:2,macd:5:10")] == ["utbot:2:10", "macd:5:10:9"]
    assert parse_studies("") == []


@pytest.mark.parametrize(("text", "says"), [
    ("wma", "unknown study 'wma'"), ("rsi:0", "whole number >= 1"), ("atr:1.5", "whole number"),
    ("bb:20:nan", "finite"), ("ema:5000", "over 1000"), ("rsi:1:2", "at most 1"),
    (",".join(f"ema:{i}" for i in range(1, 14)), "at most 12"),
])
def test_parse_refuses_with_a_reason(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_studies(text)


def test_supertrend_splits_by_direction_and_ut_bot_marks_crosses() -> None:
    n = 60
    close = np.concatenate([np.linspace(100, 130, n // 2), np.linspace(130, 90, n // 2)])
    cols = Columns(np.arange(n, dtype=np.int64) * HOUR, close, close + 1, close - 1, close, np.ones(n))
    st, ut = compute(cols, parse_studies("supertrend:5:1,utbot:1:5"))
    up, down = (line["points"] for line in st["lines"])
    for (_, u), (_, d) in zip(up, down, strict=True):
        assert u is None or d is None  # one side at a time
    assert any(v is not None for _, v in up) and any(v is not None for _, v in down)
    sides = [m["side"] for m in ut["markers"]]
    assert "sell" in sides  # the fall crosses the stop
    assert [m["time"] for m in ut["markers"]] == sorted(m["time"] for m in ut["markers"])


def test_merge_prefers_the_store_and_keeps_the_newest() -> None:
    lib = [Candle("X", "1h", T0 + i * HOUR, 1, 1, 1, 1, 1, 1) for i in range(5)]
    store = [Candle("X", "1h", T0 + i * HOUR, 2, 2, 2, 2, 2, 2) for i in range(3, 7)]
    merged = merge_candles(lib, store, limit=4)
    assert [c.open_time for c in merged] == [T0 + i * HOUR for i in range(3, 7)]
    assert {c.open for c in merged} == {2}
