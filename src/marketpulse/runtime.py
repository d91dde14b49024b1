"""The shared resources one process needs (settings, database, bus, clock), opened and closed together.

`pulse demo`, `pulse api`, `pulse worker` and `pulse ingest` each open one Runtime and start their roles on it;
the roles are wired in `marketpulse.roles`. The runtime also owns the process's services (`runtime.services`,
see `marketpulse.services`): built once on first use, stopped by `close()` before the bus and database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from marketpulse.bus import EventBus, create_bus
from marketpulse.clock import Clock, SystemClock
from marketpulse.settings import Settings, get_settings
from marketpulse.storage.database import create_engine, session_factory

if TYPE_CHECKING:
    from marketpulse.coordination.lease import LeaseStore
    from marketpulse.services import Services


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    clock: Clock = field(default_factory=SystemClock)
    # The market's time where it isn't the wall clock's: the replay's accelerated clock in `pulse demo`, the tickers'
    # time in an API apart from its source (set by `roles.run`). None: `clock`.
    market_clock: Clock | None = None

    def market_now_ms(self) -> int:
        """Now on the market's clock: what a query's "last N hours" and the ingest time window count from."""
        return (self.market_clock or self.clock).now_ms()

    @classmethod
    def open(
        cls, settings: Settings | None = None, *, clock: Clock | None = None, bus: EventBus | None = None
    ) -> Runtime:
        settings = settings or get_settings()
        engine = create_engine(settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            bus=bus or create_bus(settings.bus_url, claim_idle_ms=settings.bus_claim_idle_ms,
                                  deployment=settings.deployment),
            clock=clock or SystemClock(),
        )

    @cached_property
    def services(self) -> Services:
        from marketpulse.services import Services

        return Services.build(self)

    @cached_property
    def leases(self) -> LeaseStore:
        """Where this process's singleton duties take their leases (see `marketpulse.coordination.lease`)."""
        from marketpulse.coordination.lease import lease_store

        return lease_store(self.settings.bus_url, self.clock, self.settings.deployment)

    async def close(self) -> None:
        if "services" in self.__dict__:  # built: stop them while the bus and database are still open
            await self.services.close()
        if "leases" in self.__dict__:
            await self.leases.close()
        await self.bus.close()
        await self.engine.dispose()
