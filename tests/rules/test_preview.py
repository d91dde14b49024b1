"""Preview replays stored candles: the times it reports are the minutes whose close crossed the line, counted here
straight from the bundled sample's CSV, and the credits are those fires times the channels' costs."""

from __future__ import annotations

import csv
import gzip

import httpx
import numpy as np
import pytest

from marketpulse.marketdata import sample
from marketpulse.runtime import Runtime

from .conftest import destination, rule, user

pytestmark = pytest.mark.asyncio
DAY = 86_400_000


def sample_closes(start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(sample.btcusdt_spot_1m_path(), "rt") as f:
        rows = [r for r in csv.DictReader(f) if start <= int(r["open_time_ms"]) < end]
    return (np.array([int(r["open_time_ms"]) for r in rows]) + 60_000,
            np.array([float(r["close"]) for r in rows]))


async def test_preview_reports_each_crossing_and_its_credits(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner, auth = await user(client, runtime, "ana@example.com", plan="elite")
    email, sms = await destination(runtime, owner), await destination(runtime, owner, channel="sms")
    end = runtime.market_now_ms()
    close_times, closes = sample_closes(end - DAY, end)
    line = float(np.median(closes))
    crossed = (closes[:-1] >= line) & (closes[1:] < line)  # crosses_below: at or above, then under
    expected = close_times[1:][crossed].tolist()
    assert len(expected) >= 3  # the test means something

    body = rule(conditions={"all": [{"field": "price", "op": "crosses_below", "value": line}]},
                frequency="every_time", cooldown_s=0, channels=[email, sms], days=1)
    resp = await client.post("/api/v1/alerts/rules/preview", json=body, headers=auth)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert [f["time"] for f in out["fires"]] == expected
    assert out["credits_per_fire"] == 6 and out["credits"] == 6 * len(expected)
    assert out["sources"] == {"BTCUSDT": "sample:btcusdt_spot_1m"} and out["no_data"] == []
    assert (await client.get("/api/v1/alerts/rules", headers=auth)).json()["data"] == []  # a preview saves nothing


async def test_preview_refuses_every_symbol_and_says_what_it_cannot_replay(client: httpx.AsyncClient,
                                                                           runtime: Runtime) -> None:
    _, auth = await user(client, runtime, "ana@example.com")
    star = await client.post("/api/v1/alerts/rules/preview", json=rule(symbols="*", days=1), headers=auth)
    assert star.status_code == 422 and star.json()["detail"][0]["loc"] == ["body", "symbols"]
    body = rule(conditions={"any": [{"field": "funding_rate", "op": "gt", "value": 0.01}, {"event": "paper_fill"}]},
                days=1)
    out = (await client.post("/api/v1/alerts/rules/preview", json=body, headers=auth)).json()
    assert out["fires"] == [] and out["not_replayable"] == ["event paper_fill", "funding_rate"]
