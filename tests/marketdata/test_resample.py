"""The one resampler: the library, the SQL store's history and the replay's hours agree to the candle."""

from __future__ import annotations

import numpy as np
import pytest

from marketpulse.marketdata.intervals import Interval
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.replay import hourly_from
from marketpulse.marketdata.resample import Buckets, resample
from marketpulse.marketdata.store import load_candles, save_candles
from marketpulse.runtime import Runtime
from support.walks import random_walk

HOUR = 3_600_000
T0 = 1_760_126_400_000  # 2025-10-10 20:00 UTC


def minutes_with_holes() -> tuple[list[Candle], np.ndarray]:
    """Five hours of minutes starting mid-hour, with a 7-minute hole in the third full hour and a partial last."""
    walk = random_walk(5 * 60, seed=3, start_ms=T0 + 20 * 60_000)
    keep = np.ones(len(walk), dtype=bool)
    keep[160:167] = False
    quote = walk.volume * walk.close
    candles = [Candle("BTCUSDT", "1m", int(t), float(o), float(h), float(lo), float(c), float(v), float(q))
               for t, o, h, lo, c, v, q, k in zip(walk.time, walk.open, walk.high, walk.low, walk.close,
                                                   walk.volume, quote, keep, strict=True) if k]
    return candles, keep


async def test_library_store_and_replay_resample_alike(runtime: Runtime) -> None:
    candles, keep = minutes_with_holes()
    walk = random_walk(5 * 60, seed=3, start_ms=T0 + 20 * 60_000)
    frame = walk.take(np.flatnonzero(keep))
    quote = np.array([c.quote_volume for c in candles])

    library = resample(frame, "1h")  # complete hours only
    replay, replay_quote = hourly_from(frame, quote)
    await save_candles(runtime.sessions, "replay", candles)
    stored = await load_candles(runtime.sessions, "BTCUSDT", "1h", limit=None)
    complete = [c for c in stored if c.closed]

    assert len(library) == 3  # 5 h from :20 = 4 partial-edged hours … minus the one with the hole
    assert [c.open_time for c in complete] == library.time.tolist() == replay.time.tolist()
    for name in ("open", "high", "low", "close", "volume"):
        assert [getattr(c, name) for c in complete] == getattr(library, name).tolist() == getattr(replay, name).tolist()
    assert [c.quote_volume for c in complete] == pytest.approx(replay_quote.tolist(), rel=1e-12)
    # The store also serves the incomplete buckets (the first from :20, the holed one, the forming last) as open.
    assert [c.open_time for c in stored if not c.closed] == [T0, T0 + 3 * HOUR, T0 + 5 * HOUR]


def test_buckets_refuse_intervals_that_do_not_tile() -> None:
    with pytest.raises(ValueError, match="whole multiple"):
        Buckets(np.zeros(0, dtype=np.int64), Interval.M3, Interval.M5)
    assert len(resample(random_walk(10).slice(0, 0), "1h")) == 0
