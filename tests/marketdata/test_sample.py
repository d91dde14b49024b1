"""The bundled sample: small, readable by the shared reader, and exactly what scripts/make_sample.py derives."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from marketpulse.marketdata.klines_csv import read_kline_columns
from marketpulse.marketdata.sample import CASCADE_HOUR_MS, SAMPLE_DIR, btcusdt_spot_1m_path, usdm_perp_1h_path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_sample.py"


def test_sample_is_small_and_covers_the_cascade_week() -> None:
    assert sum(p.stat().st_size for p in SAMPLE_DIR.iterdir() if p.is_file()) < 2_000_000
    perps = read_kline_columns(usdm_perp_1h_path())
    assert perps.interval == "1h" and len(perps.names) > 500
    assert perps.time.min() == CASCADE_HOUR_MS - 3 * 86_400_000 - 21 * 3_600_000  # 2025-10-07 00:00
    assert perps.time.max() == CASCADE_HOUR_MS + 3 * 86_400_000 + 2 * 3_600_000  # 2025-10-13 23:00
    cascade = perps.time == CASCADE_HOUR_MS
    assert cascade.sum() > 500
    btc = read_kline_columns(btcusdt_spot_1m_path())
    assert btc.names == ["BTCUSDT"] and btc.interval == "1m" and len(btc) == 3 * 1440
    assert np.all(np.diff(btc.time) == 60_000)


@pytest.mark.slow  # re-reads the 48 MB of ../shared/data
def test_sample_regenerates_byte_for_byte(shared_data: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_sample", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.make_sample(shared_data, tmp_path)
    assert len(written) == 2
    for path, rows in written:
        assert rows > 4000
        assert path.read_bytes() == (SAMPLE_DIR / path.name).read_bytes()
