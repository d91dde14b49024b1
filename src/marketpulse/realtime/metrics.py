"""Prometheus metrics of the realtime path (default registry, so /metrics shows them with everyone else's)."""

from prometheus_client import Counter, Gauge

EMITS = Counter("realtime_emits_total", "Socket.IO events emitted by this process", ["event"])
BAD_ROWS = Counter("realtime_rejected_entries_total", "OI entries dropped from the bus (bad symbol, negative USD)")
DUPLICATES_DROPPED = Counter(
    "realtime_duplicates_dropped_total", "Events not pushed because their bus message was pushed already", ["event"]
)
CLIENTS = Gauge("realtime_connected_clients", "Socket.IO clients connected to this process")
