"""Pick the bus implementation from `PULSE_BUS_URL`."""

from __future__ import annotations

from marketpulse.bus.base import EventBus


def create_bus(url: str, *, claim_idle_ms: int = 30_000) -> EventBus:
    """`claim_idle_ms` (Redis): how long a message may sit unacknowledged with a consumer before another claims it."""
    if url.startswith("memory://"):
        from marketpulse.bus.memory import MemoryBus

        return MemoryBus()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from marketpulse.bus.redis_streams import RedisStreamsBus

        return RedisStreamsBus(url, claim_idle_ms=claim_idle_ms)
    raise ValueError(f"PULSE_BUS_URL: unsupported scheme in {url!r} (use memory:// or redis://host:port/db)")
