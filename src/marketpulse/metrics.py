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

# Strategy signals (deploy/prometheus/signals.rules.yml alerts on these).
WEBHOOK_REQUESTS = Counter(
    "marketpulse_webhook_requests_total", "TradingView webhook requests by outcome (accepted, duplicate, stale; "
    "bad_token, malformed, unknown_market, flood, forbidden are failed webhooks)", ["outcome"],
)
WEBHOOK_ACK_SECONDS = Histogram(
    "marketpulse_webhook_ack_seconds", "Webhook request to acknowledgement (the durable write included)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 3, 5),
)
SIGNALS_PROCESSED = Counter("marketpulse_signals_processed_total", "Signals whose notifications were queued",
                            ["source"])
SIGNAL_PROCESSING_ERRORS = Counter("marketpulse_signal_processing_errors_total",
                                   "Signal processing attempts that failed (the signal waits for the next poll)")
SIGNAL_LATENCY_SECONDS = Histogram(
    "marketpulse_signal_processing_seconds", "A signal's receipt to its notifications queued",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
SIGNAL_QUEUE_DEPTH = Gauge("marketpulse_signal_queue_depth", "Signals stored and waiting for processing")
