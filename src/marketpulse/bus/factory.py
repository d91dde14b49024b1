"""Pick the bus implementation from `PULSE_BUS_URL`."""

from __future__ import annotations

from marketpulse.bus.base import EventBus


def key_prefix(deployment: str | None) -> str:
    """Where a deployment's Redis keys live: `pulse:`, or `pulse:{deployment}:` when it is named.

    Bus streams, leases and rate-limit windows all sit under it, so deployments sharing a Redis server (and
    database) never read each other's messages, and one can be wiped (SCAN MATCH prefix*) without touching others."""
    return f"pulse:{deployment}:" if deployment else "pulse:"


def create_bus(url: str, *, claim_idle_ms: int = 30_000, deployment: str | None = None) -> EventBus:
    """`claim_idle_ms` (Redis): how long a message may sit unacknowledged with a consumer before another claims it.
    `deployment` (Redis): names the streams' prefix (`key_prefix`)."""
    if url.startswith("memory://"):
        from marketpulse.bus.memory import MemoryBus

        return MemoryBus()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from marketpulse.bus.redis_streams import RedisStreamsBus

        return RedisStreamsBus(url, claim_idle_ms=claim_idle_ms, stream_prefix=key_prefix(deployment))
    raise ValueError(f"PULSE_BUS_URL: unsupported scheme in {url!r} (use memory:// or redis://host:port/db)")
