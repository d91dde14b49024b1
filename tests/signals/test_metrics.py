"""The Prometheus rules alert on metrics the platform exports, at the seed's thresholds; a webhook request counts
its outcome."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import REGISTRY

from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime

from .conftest import admin, config

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "signals.rules.yml"


def test_the_rules_read_exported_metrics_at_the_seeds_thresholds() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = {r["alert"]: r["expr"] for g in groups for r in g["rules"]}
    exported = {m.name for m in REGISTRY.collect()}
    for name, expr in rules.items():
        used = set(re.findall(r"marketpulse_[a-z_]+", expr))
        assert used, name
        for metric in used:
            base = re.sub(r"_(bucket|total)$", "", metric)
            assert base in exported or metric in exported, (name, metric)
    assert "> 1000" in rules["SignalQueueBacklog"]
    assert "> 0.05" in rules["SignalErrorRate"] and "[5m]" in rules["SignalErrorRate"]
    assert "0.95" in rules["SignalLatencyHigh"] and "> 2" in rules["SignalLatencyHigh"]
    assert "[1h]" in rules["FailedWebhooks"] and "> 50" in rules["FailedWebhooks"]


def _count(outcome: str) -> float:
    return REGISTRY.get_sample_value("marketpulse_webhook_requests_total", {"outcome": outcome}) or 0.0


@pytest.mark.asyncio
async def test_webhook_outcomes_are_counted(client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock) -> None:
    made = await config(client, await admin(client, runtime))
    before = {o: _count(o) for o in ("accepted", "bad_token", "malformed")}
    await client.post(f"/webhook/tradingview/{made['token']}", json={"action": "buy"})
    await client.post("/webhook/tradingview/wrong", json={"action": "buy"})
    await client.post(f"/webhook/tradingview/{made['token']}", content=b"{oops")
    assert {o: _count(o) - before[o] for o in before} == {"accepted": 1, "bad_token": 1, "malformed": 1}
