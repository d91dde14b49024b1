"""Prometheus metrics of the bus's bad-data rule (default registry: /metrics shows them)."""

from prometheus_client import Counter

DEAD_LETTERS = Counter(
    "bus_dead_letters_total", "Messages moved to the dead letters, by topic and reason", ["topic", "reason"]
)
REJECTED_ROWS = Counter(
    "bus_rejected_rows_total", "Invalid rows dropped from batch messages (the valid rows were kept)", ["topic"]
)
