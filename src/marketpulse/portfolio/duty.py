"""The portfolio's singleton duty (lease `portfolio-snapshots`): every few minutes the worker holding the lease syncs
accounts not synced for an hour and stores each owner's snapshot for the current market hour (keyed by owner and
hour: a repeated check or a takeover overwrites the same row), then thins snapshots past 90 days to one a day."""

from __future__ import annotations

from typing import TYPE_CHECKING

from marketpulse.coordination.lease import PeriodicDuty
from marketpulse.portfolio.service import SNAPSHOT_CHECK_MS

if TYPE_CHECKING:
    from marketpulse.runtime import Runtime

LEASE = "portfolio-snapshots"


def portfolio_snapshots(runtime: Runtime) -> PeriodicDuty:
    service = runtime.services.portfolio
    return PeriodicDuty(runtime.leases, LEASE, service.hourly, every_ms=SNAPSHOT_CHECK_MS,
                        ttl_ms=int(runtime.settings.lease_ttl_s * 1000), clock=runtime.clock)
