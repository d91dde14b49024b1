"""The USDT watcher: a singleton duty (lease `usdt-watcher`) that finds payments nobody submitted a hash for.

Every `PULSE_USDT_WATCH_INTERVAL_S` the worker holding the lease reads each chain's new confirmed blocks through
`eth_getLogs` (the token's `Transfer` events to the receiving address), matches them to invoices by their unique
amount, and settles what is confirming. A chain that fails is retried at the next look (its cursor only moves past
blocks that were read), and the other chains are still looked at.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from marketpulse.coordination.lease import PeriodicDuty
from marketpulse.onchain.service import UsdtPayments

if TYPE_CHECKING:
    from marketpulse.runtime import Runtime

log = structlog.get_logger(__name__)

LEASE = "usdt-watcher"


async def look(payments: UsdtPayments) -> int:
    """One pass over every chain; how many transfers were matched to invoices."""
    matched = 0
    for chain in payments.clients:
        try:
            matched += await payments.watch(chain)
        except Exception:  # a node or database hiccup: the next look reads from the same cursor
            log.exception("usdt watcher failed; retrying at the next look", chain=chain)
    return matched


def usdt_watcher(runtime: Runtime) -> PeriodicDuty:
    """The watcher a worker runs: the runtime's leases, `PULSE_LEASE_TTL_S`, `PULSE_USDT_WATCH_INTERVAL_S`."""
    settings, payments = runtime.settings, runtime.services.usdt
    return PeriodicDuty(runtime.leases, LEASE, lambda: look(payments),
                        every_ms=int(settings.usdt_watch_interval_s * 1000),
                        ttl_ms=int(settings.lease_ttl_s * 1000), clock=runtime.clock)
