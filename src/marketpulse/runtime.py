"""The shared resources one process needs (settings, database, bus, clock), opened and closed together.

`pulse demo`, `pulse api`, `pulse worker` and `pulse ingest` each open one Runtime and start their roles on it;
the roles are wired in `marketpulse.roles`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from marketpulse.bus import EventBus, create_bus
from marketpulse.clock import Clock, SystemClock
from marketpulse.settings import Settings, get_settings
from marketpulse.storage.database import create_engine, session_factory


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    clock: Clock = field(default_factory=SystemClock)

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
            bus=bus or create_bus(settings.bus_url, claim_idle_ms=settings.bus_claim_idle_ms),
            clock=clock or SystemClock(),
        )

    async def close(self) -> None:
        await self.bus.close()
        await self.engine.dispose()
