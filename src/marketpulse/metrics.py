"""Prometheus metrics of the platform's work, counted where the work happens (default registry).

Every process counts its own; `/metrics` of an API process shows that process (with `pulse demo`, all of them,
since every role runs in it). Bus lag is read from the bus itself at scrape time (`api.metrics`), so any API
process reports every consumer group's lag, wherever the consumers run.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INGEST_FRAMES = Counter(
    "marketpulse_ingest_frames_total", "Market-data frames the ingest source took in (WebSocket frames, replay events)",
    ["source"],
)
ALERTS_RAISED = Counter(
    "marketpulse_alerts_raised_total", "Volume alerts newly stored (a duplicate is not raised again)", ["type"]
)
PAPER_FILLS = Counter("marketpulse_paper_fills_total", "Paper-trading fills booked", ["side"])
JOB_DURATION = Histogram(
    "marketpulse_backtest_job_duration_seconds", "Backtest job run time, start to result", ["status"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
BUS_LAG = Gauge(
    "marketpulse_bus_group_lag", "Messages on a topic not yet delivered to a consumer group", ["topic", "group"]
)
BUS_PENDING = Gauge(
    "marketpulse_bus_group_pending", "Messages delivered to a consumer group and not yet acknowledged",
    ["topic", "group"],
)
