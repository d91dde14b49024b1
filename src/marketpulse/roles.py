"""The process roles and how they are wired: sources → bus → detectors/recorder/paper → store → API.

- ingest: a market source (replay or Binance) publishing to the bus
- worker: market recorder, spike scanner, paper-trading runner, rule alerts (bus consumers that write the store),
          strategy signals (stored webhook signals processed, computed ones under a lease), a notification
          dispatcher, monthly credit grants and metered API billing
- api:    FastAPI + Socket.IO (reads the store, subscribes to the bus)
`pulse demo` runs all three in one process; `pulse api|worker|ingest` run one each, sharing PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import structlog

from marketpulse.bus import Message, topics
from marketpulse.bus.topics import TickersEvent
from marketpulse.clock import Clock, EventClock
from marketpulse.marketdata.sources import MarketSource
from marketpulse.runtime import Runtime

log = structlog.get_logger(__name__)

SOURCES = ("replay", "binance")
API_GRACE_S = 3  # open requests (and Socket.IO long-polls) get this long to finish on shutdown


def make_source(name: str, runtime: Runtime) -> MarketSource:
    if name == "replay":
        from marketpulse.marketdata.replay import ReplaySource

        return ReplaySource(runtime.settings)
    if name == "binance":
        from marketpulse.marketdata.binance.source import BinanceSource

        return BinanceSource(runtime.settings, clock=runtime.clock)
    raise ValueError(f"unknown source {name!r}; choose one of {', '.join(SOURCES)}")


Stopper = Callable[[], Awaitable[None]]


async def start_worker(runtime: Runtime, market_clock: Clock, *, follows_bus_time: bool = False) -> list[Stopper]:
    """Start the bus consumers that turn market data into stored candles, alerts and paper fills."""
    from marketpulse.detection.scanner import CONSUMER_GROUP, SpikeScanner
    from marketpulse.marketdata.store import MarketRecorder

    stoppers: list[Stopper] = []
    recorder = MarketRecorder(runtime)
    await recorder.start()
    stoppers.append(recorder.stop)
    # A consumer group of its own per worker: the detector needs every candle of an hour (a shared group would give
    # each worker's detector only its share, and none would ever raise an alert). Workers then scan redundantly; the
    # alert store's unique (symbol, hour, type) makes each alert stored and published once.
    scanner = SpikeScanner(runtime, clock=market_clock, grace_ms=runtime.settings.spike_scan_grace_ms,
                           group=f"{CONSUMER_GROUP}-{uuid.uuid4().hex[:8]}", group_is_ours=True,
                           await_candles=follows_bus_time)
    await scanner.start()
    stoppers.append(scanner.stop)
    # Every worker joins the paper-trading election; the lease holder runs it (the others take over if it dies).
    from marketpulse.trading.paper.runner import PaperRunner

    runner = PaperRunner(runtime)
    await runner.start()
    stoppers.append(runner.stop)
    # Alert rules: every worker holds every rule; the store keeps each match once (see rules/worker.py).
    from marketpulse.rules.worker import RuleWorker

    rule_worker = RuleWorker(runtime.services.rules, runtime.bus)
    await rule_worker.start()
    stoppers.append(rule_worker.stop)
    # Strategy signals: every worker processes stored webhook signals; the lease holder computes the live ones.
    from marketpulse.signals.worker import ComputedSignals, SignalWorker

    signal_worker = SignalWorker(runtime.services.signals, runtime.bus)
    await signal_worker.start()
    stoppers.append(signal_worker.stop)
    computed = ComputedSignals(runtime.services.signals, runtime.bus, runtime.leases,
                               ttl_ms=int(runtime.settings.lease_ttl_s * 1000), clock=runtime.clock)
    await computed.start()
    stoppers.append(computed.stop)
    stoppers.append(start_dispatcher(runtime))
    # Monthly credit grants: another singleton duty, under a lease of its own.
    from marketpulse.credits.grants import GrantRunner, MonthlyGrants

    grants = GrantRunner(MonthlyGrants(runtime.sessions, runtime.clock, runtime.services.credits), runtime.leases,
                         ttl_ms=int(runtime.settings.lease_ttl_s * 1000), clock=runtime.clock)
    await grants.start()
    stoppers.append(grants.stop)
    # Card payments: a failed renewal's grace period ends on the holder of its lease (plan → free, user told).
    from marketpulse.coordination.lease import PeriodicDuty
    from marketpulse.payments.service import GRACE_CHECK_EVERY_MS, GRACE_LEASE

    grace = PeriodicDuty(runtime.leases, GRACE_LEASE, runtime.services.payments.expire_grace,
                         every_ms=GRACE_CHECK_EVERY_MS, ttl_ms=int(runtime.settings.lease_ttl_s * 1000),
                         clock=runtime.clock)
    await grace.start()
    stoppers.append(grace.stop)
    # Metered API calls: the excess over each metered plan's quota reported to Stripe, by the holder of its lease.
    from marketpulse.payments.metering import METER_LEASE

    metering = PeriodicDuty(runtime.leases, METER_LEASE, runtime.services.metering.report,
                            every_ms=int(runtime.settings.api_meter_report_s * 1000),
                            ttl_ms=int(runtime.settings.lease_ttl_s * 1000), clock=runtime.clock)
    await metering.start()
    stoppers.append(metering.stop)
    # Plans paid in USDT: a period that ran out unrenewed drops to free, on the holder of its lease.
    from marketpulse.onchain.service import TERMS_CHECK_EVERY_MS, TERMS_LEASE

    terms = PeriodicDuty(runtime.leases, TERMS_LEASE, runtime.services.usdt.expire_terms,
                         every_ms=TERMS_CHECK_EVERY_MS, ttl_ms=int(runtime.settings.lease_ttl_s * 1000),
                         clock=runtime.clock)
    await terms.start()
    stoppers.append(terms.stop)
    # The USDT watcher: payments found on-chain without a submitted hash, under a lease of its own.
    if runtime.settings.usdt_chains:
        from marketpulse.onchain.watcher import usdt_watcher

        watcher = usdt_watcher(runtime)
        await watcher.start()
        stoppers.append(watcher.stop)
    # Portfolio: accounts synced and every owner's value snapshotted each market hour, under a lease of its own.
    from marketpulse.portfolio.duty import portfolio_snapshots

    snapshots = portfolio_snapshots(runtime)
    await snapshots.start()
    stoppers.append(snapshots.stop)
    # After the last subscription (a leader's paper groups included): safe to start publishing.
    log.info("worker consumers subscribed", paper_leader=runner.lease.held)
    return stoppers


def start_dispatcher(runtime: Runtime) -> Stopper:
    """Notification delivery: every worker runs a dispatcher (claims are safe side by side, see
    `delivery.dispatcher`); its times are wall-clock times (retries, leases), not the market's."""
    from marketpulse.delivery.dispatcher import Dispatcher

    dispatcher = Dispatcher(runtime.sessions, runtime.clock, runtime.settings, bus=runtime.bus,
                            credits=runtime.services.credits)
    task = asyncio.create_task(dispatcher.run(), name="dispatcher")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await dispatcher.close()

    return stop


async def follow_market_time(runtime: Runtime, fallback: Clock | None = None) -> tuple[EventClock, Stopper]:
    """A worker (or API) without its own source follows the market's time from ticker events on the bus; until the
    first one it reads `fallback`'s time (a worker's scanner wants 0 then: it waits for market time)."""
    clock = EventClock(fallback)

    async def observe(msg: Message[TickersEvent]) -> None:
        clock.observe(msg.data.time)

    sub = await runtime.bus.subscribe(topics.MARKET_TICKERS, f"clock-{uuid.uuid4().hex[:8]}", observe, ephemeral=True)
    return clock, sub.close


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("setup task failed", task=task.get_name(), exc_info=task.exception())


GC_THRESHOLDS = (50_000, 50, 100)  # CPython's (2000, 10, 10) ran a full collection every few seconds under load


def settle_collector() -> None:
    """Once the app has started: move what start-up built (modules, routes, models, caches) out of the collector's
    reach (`gc.freeze`), and collect young objects less often. Under HTTP load the full collections walked that
    start-up heap again and again (17 in 40 s, up to 0.56 s each: the p99); request garbage is acyclic and goes by
    reference counting anyway."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def api_server(runtime: Runtime, host: str, port: int) -> Any:
    """uvicorn's Server without its own signal handlers: the process's runner owns SIGINT/SIGTERM and asks the
    server to stop (`should_exit`), so a signal never cancels a request or the app's lifespan half-way (which is
    what logged `ERROR: Traceback … CancelledError` on SIGTERM)."""
    import uvicorn

    from marketpulse.api.app import create_app

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        async def startup(self, sockets: list[Any] | None = None) -> None:
            await super().startup(sockets=sockets)
            settle_collector()

    config = uvicorn.Config(create_app(runtime), host=host, port=port, log_level="info", lifespan="on",
                            timeout_graceful_shutdown=API_GRACE_S)
    return Server(config)


async def run(runtime: Runtime, *, roles: set[str], source: str = "replay", host: str = "127.0.0.1",
              port: int = 8000, demo: bool = False, stop: asyncio.Event | None = None) -> None:
    """Run the given roles until `stop` is set (SIGINT/SIGTERM: see `cli.serve`), cancelled, or a role ends.

    Shutdown is ordered so nothing is cut mid-step: the API server finishes its requests and its lifespan, the
    source and one-off tasks are cancelled, the consumers close, then the runtime (services, bus, database)."""
    stop = stop or asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []  # the roles: when one ends, the process ends
    side_tasks: list[asyncio.Task[Any]] = []  # one-off setup that may finish early
    stoppers: list[Stopper] = []
    market_clock: Clock = runtime.clock
    server: Any = None
    try:
        if roles & {"api", "worker"}:
            runtime.services  # noqa: B018  (built here, where the process is assembled, before anything uses them)
        if "ingest" in roles:
            src = make_source(source, runtime)
            market_clock = src.clock
        elif "worker" in roles:
            market_clock, stop_clock = await follow_market_time(runtime)
            stoppers.append(stop_clock)
        elif "api" in roles:  # its queries' "now" is the market's (a replay runs in the past), the wall's until then
            market_clock, stop_clock = await follow_market_time(runtime, fallback=runtime.clock)
            stoppers.append(stop_clock)
        runtime.market_clock = market_clock
        if runtime.settings.metrics_port and "api" not in roles:  # the API serves /metrics itself
            from marketpulse.api.metrics import serve_metrics

            stoppers.append(serve_metrics(runtime.settings.metrics_port, runtime.settings.host))
        if "worker" in roles:
            stoppers += await start_worker(runtime, market_clock, follows_bus_time="ingest" not in roles)
        if demo:
            from marketpulse.demo import seed

            side_tasks.append(asyncio.create_task(seed(runtime), name="demo-seed"))
            side_tasks[-1].add_done_callback(_log_failure)
        if "ingest" in roles:
            tasks.append(asyncio.create_task(src.run(runtime.bus), name=f"source:{source}"))
            log.info("market source started", source=source)
        if "api" in roles:
            server = api_server(runtime, host, port)
            tasks.append(asyncio.create_task(server.serve(), name="api"))
        stopped = asyncio.create_task(stop.wait(), name="stop")
        side_tasks.append(stopped)
        done, _ = await asyncio.wait([*tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            t.result()  # surface a crashed role instead of idling
        log.info("stopping", roles=sorted(roles))
    finally:
        if server is not None:
            server.should_exit = True  # a graceful stop: open requests finish, the lifespan shuts down
            with contextlib.suppress(Exception):
                await asyncio.wait([tasks[-1]], timeout=API_GRACE_S + 1)
        for t in tasks + side_tasks:
            t.cancel()
        for t in tasks + side_tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        log.debug("roles stopped; closing consumers")
        for stop_consumer in reversed(stoppers):
            with contextlib.suppress(Exception):
                await stop_consumer()
        log.debug("consumers closed; closing the runtime")
        await runtime.close()
        log.debug("runtime closed")
