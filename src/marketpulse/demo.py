"""What `pulse demo` sets up beyond the roles: the bundled real-data sample in the candle library, one strategy
deployed to paper (the seeded admin's account) so paper trading visibly runs on the replayed market, and one UT Bot
signal config computed live, which the admin subscribes to in-app (its webhook URL is printed for a curl), and the
local Telegram and webhook receivers the admin's destinations point at (`delivery.demo`, shown at /dev/receivers)."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.expression import ColumnExpressionArgument

from marketpulse.marketdata.intervals import MINUTE_MS
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from marketpulse.storage.database import create_engine, session_factory
from marketpulse.times import datetime_ms, ms_datetime

log = structlog.get_logger(__name__)

# (exchange in the library, path function in marketpulse.marketdata.sample). Perpetuals and spot are kept
# apart because both name their BTC market BTCUSDT.
SAMPLE_SERIES = (("binance_swap", "usdm_perp_1h_path"), ("binance", "btcusdt_spot_1m_path"))
DEMO_DEPLOYMENT = {"strategy": "ut_bot", "symbol": "BTCUSDT", "interval": "5m",
                   "params": {"key_value": 1.0, "atr_period": 10, "mode": "always_in"}}


def import_sample(settings: Settings) -> int:
    """Append the bundled sample to the library (appends skip what is stored, so this is idempotent)."""
    from marketpulse.marketdata import sample
    from marketpulse.marketdata.klines_csv import read_klines_frame
    from marketpulse.marketdata.library import CandleLibrary

    library = CandleLibrary(settings.data_dir / "library")
    written = 0
    for exchange, path_fn in SAMPLE_SERIES:
        for symbol, frame in read_klines_frame(getattr(sample, path_fn)()).items():
            if len(frame) >= 2:
                written += library.append(exchange, symbol, frame.interval, frame).written
    return written


async def deploy_demo_strategy(runtime: Runtime, owner_id: str) -> None:
    """Deploy the demo strategy for `owner_id` (the seeded admin) once per database; a restarted demo resumes the
    one it has."""
    from marketpulse.trading.paper.deployments import DeploymentSpec

    deployments = runtime.services.deployments
    if await deployments.for_owner(owner_id):
        return
    spec = DeploymentSpec(**DEMO_DEPLOYMENT)  # type: ignore[arg-type]
    row = await deployments.deploy(owner_id, spec, require_market=False)  # the sample's symbol, not yet replayed
    log.info("demo strategy deployed to paper", deployment=row.id, **DEMO_DEPLOYMENT)


async def seed(runtime: Runtime) -> None:
    from marketpulse.accounts.demo import DEMO_ADMIN, start_demo_accounts

    s = runtime.settings
    password = await start_demo_accounts(runtime.services.accounts, s.host, s.port)
    print(f"demo admin: {DEMO_ADMIN} / {password}   (mail the demo sends: http://{s.host}:{s.port}/dev/mail)",
          flush=True)
    from marketpulse.payments.demo import start_demo_payments

    if await start_demo_payments(runtime.services.payments, s.host, s.port) is not None:
        print(f"card payments go to a local fake Stripe at {s.stripe_api_base} (its checkout page has a Pay button)",
              flush=True)
    from marketpulse.onchain.demo import start_demo_chain

    chain = await start_demo_chain(runtime)
    if chain is not None:
        print(f"USDT payments go to a local chain (anvil) at {chain.anvil.url}, mock USDT {chain.token}; "
              f"the billing page pays from the demo wallet {chain.wallet}", flush=True)
    from marketpulse.portfolio.demo import start_demo_portfolio

    hint = start_demo_portfolio(runtime, chain, _replay_start_ms(s))
    if hint is not None:
        wallet = f"; the demo wallet {hint.wallet} on chain {hint.chain}" if hint.wallet else ""
        print(f"portfolio: connect the demo exchange ({hint.exchange}, read-only key {hint.api_key}, secret "
              f"{hint.secret}){wallet} at /portfolio", flush=True)
    written = await asyncio.to_thread(import_sample, runtime.settings)
    log.info("bundled sample in the candle library", candles_written=written)
    admin = await runtime.services.accounts.find_user(DEMO_ADMIN)
    assert admin is not None  # just seeded
    await deploy_demo_strategy(runtime, admin.id)  # signed in as the admin, /paper shows it running
    from marketpulse.delivery.demo import DEMO_PLAN, start_demo_receivers

    await start_demo_receivers(runtime, admin.id)
    print(f"demo Telegram and webhook receivers (the admin's destinations): http://{s.host}:{s.port}/dev/receivers",
          flush=True)
    url = await seed_signal_config(runtime, admin.id, DEMO_PLAN)
    print(f"demo signal config: UT Bot BTCUSDT 5m, computed live; TradingView webhook: {url}; configs at "
          f"http://{s.host}:{s.port}/admin#signals, subscriptions at /signals", flush=True)


CASCADE_MS = 1_760_127_600_000  # 2025-10-10T20:20Z: where the bundled sample's replay starts by default


def _replay_start_ms(settings: Settings) -> int:
    """Where the demo's market time starts: the demo exchange's history ends before it."""
    return datetime_ms(settings.replay_start) if settings.replay_start is not None else CASCADE_MS


DEMO_SIGNAL_CONFIG = {"symbol": "BTCUSDT", "timeframe": "5m", "strategy": "ut_bot"}
DEMO_SIGNAL_PARAMS = {"key_value": 1.0, "atr_period": 10}


async def seed_signal_config(runtime: Runtime, owner_id: str, plan: str) -> str:
    """Once per database: a computed UT Bot config and the admin's in-app subscription to it; its webhook URL."""
    from marketpulse.signals.core import config_params

    signals = runtime.services.signals
    found = [c for c in await signals.list_configs() if c.symbol == DEMO_SIGNAL_CONFIG["symbol"]
             and c.timeframe == DEMO_SIGNAL_CONFIG["timeframe"] and c.strategy == DEMO_SIGNAL_CONFIG["strategy"]]
    if found:
        row = found[0]
    else:
        params = config_params("ut_bot", dict(DEMO_SIGNAL_PARAMS))
        row = await signals.create_config(symbol="BTCUSDT", timeframe="5m", strategy="ut_bot", params=params,
                                          computed=True)
        in_app = await runtime.services.delivery.add(owner_id, plan, "in_app", "")
        await signals.subscribe(owner_id, plan, row.id, [in_app.row.id])
        log.info("demo signal config computed live", config=row.id)
    return f"{runtime.settings.public_url.rstrip('/')}/webhook/tradingview/{row.token}"


# --- a restarted demo carries on its market time -------------------------------------------------------------------


def _market_time_columns() -> list[ColumnExpressionArgument[Any]]:
    """Columns holding market times the demo has reached (not ones set in its future on purpose, like an order's
    expiry or a halt's end). A candle is closed a minute after it opens, so its open time counts plus a minute."""
    from marketpulse.detection.tables import DetectionScanRow, VolumeAlertRow
    from marketpulse.marketdata.tables import CandleRow, MarketSnapshotRow, OpenInterestRow
    from marketpulse.trading.paper.tables import (
        PaperAccountRow,
        PaperDeploymentRow,
        PaperFillRow,
        PaperOrderRow,
        PaperPositionRow,
    )

    return [
        CandleRow.open_time + MINUTE_MS, MarketSnapshotRow.time, OpenInterestRow.as_of, VolumeAlertRow.timestamp,
        DetectionScanRow.last_scan_ms,
        PaperAccountRow.updated_at_ms, PaperPositionRow.opened_at_ms, PaperOrderRow.updated_at_ms,
        PaperFillRow.time_ms, PaperDeploymentRow.created_at_ms, PaperDeploymentRow.last_bar_ms,
    ]


async def newest_market_time_ms(sessions: async_sessionmaker[AsyncSession]) -> int | None:
    """The latest market time any stored row has seen, or None for an empty database."""
    newest: int | None = None
    async with sessions() as session:
        for column in _market_time_columns():
            value = (await session.execute(select(func.max(column)))).scalar()
            if value is not None:
                newest = max(newest or 0, int(value))  # every market time is stored as epoch ms
    return newest


async def resume_market_time(settings: Settings) -> Settings:
    """Settings whose replay starts no earlier than the stored state: a restart continues market time instead of
    going back to the configured start, which would leave stored positions, fills and alerts in the future."""
    if settings.source != "replay":
        return settings  # live data runs on the wall clock, which does not go back
    engine = create_engine(settings.database_url)
    try:
        stored_ms = await newest_market_time_ms(session_factory(engine))
    finally:
        await engine.dispose()
    if stored_ms is None:
        return settings
    resume_ms = -(-stored_ms // MINUTE_MS) * MINUTE_MS  # the next whole minute: the replay starts on a boundary
    configured = settings.replay_start
    if configured is not None and datetime_ms(configured) >= resume_ms:
        return settings
    resume = ms_datetime(resume_ms)
    log.info("resuming the replay where the stored data ends (delete the database to start over)",
             market_time=resume.isoformat(), database=settings.database_url)
    return settings.model_copy(update={"replay_start": resume})
