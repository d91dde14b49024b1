"""The detector over the bundled real sample (hourly, the 2025-10-10 cascade week) against an independent oracle."""

from __future__ import annotations

import numpy as np

from marketpulse.detection.volume_spike import VolumeSpikeDetector, detect_offline
from marketpulse.marketdata.klines_csv import read_kline_columns
from marketpulse.marketdata.sample import CASCADE_HOUR_MS, USDM_PERP_1H

HOUR = 3_600_000


def oracle_spikes(path: str, ratio: float = 3.0, floor: float = 3e6) -> set[tuple[str, int]]:
    """(symbol, hour) pairs by the hourly rule written directly in numpy: this hour's volume × close against the
    directly preceding hour's, for USDT symbols."""
    cols = read_kline_columns(path)
    out: set[tuple[str, int]] = set()
    for symbol, start, stop in cols.symbol_runs():
        if not symbol.endswith("USDT"):
            continue
        t = cols.time[start:stop]
        qv = cols.volume[start:stop] * cols.close[start:stop]
        consecutive = np.diff(t) == HOUR
        prev, cur = qv[:-1], qv[1:]
        hit = consecutive & (prev > 0) & (cur >= ratio * prev) & (cur >= floor)
        out.update((symbol, int(h)) for h in t[1:][hit])
    return out


def test_hourly_sample_matches_the_oracle_and_lights_up_the_cascade_hour() -> None:
    alerts = list(detect_offline(read_kline_columns(USDM_PERP_1H), VolumeSpikeDetector()))
    assert {a.alert_type for a in alerts} == {"SPIKE"}
    assert [a.timestamp for a in alerts] == sorted(a.timestamp for a in alerts)
    assert all(a.timestamp == a.hour_timestamp + HOUR for a in alerts)  # each hour judged at its close
    assert {(a.symbol, a.hour_timestamp) for a in alerts} == oracle_spikes(str(USDM_PERP_1H))
    cascade = [a for a in alerts if a.hour_timestamp == CASCADE_HOUR_MS]
    assert len(cascade) > 300  # hundreds of symbols at once; most of them falling
    assert sum(a.candle_direction == "bearish" for a in cascade) > 0.8 * len(cascade)
