"""Prometheus metrics of the realtime path (default registry, so /metrics shows them with everyone else's)."""

from prometheus_client import Counter, Gauge

EMITS = Counter("realtime_emits_total", "Socket.IO events emitted by this process", ["event"])
BAD_ROWS = Counter("realtime_rejected_entries_total", "Malformed market rows or OI entries dropped from the bus")
CLIENTS = Gauge("realtime_connected_clients", "Socket.IO clients connected to this process")
