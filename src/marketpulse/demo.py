"""What `pulse demo` sets up beyond the roles: the bundled real-data sample in the candle library, and one
strategy deployed to paper so paper trading visibly runs on the replayed market."""

from __future__ import annotations

import asyncio

import structlog

from marketpulse.runtime import Runtime
from marketpulse.settings import Settings

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


async def deploy_demo_strategy(runtime: Runtime, owner_id: str = "default") -> None:
    """Deploy the demo strategy once per database; a restarted demo resumes the one it has."""
    from marketpulse.trading.paper.deployments import DeploymentSpec

    deployments = runtime.services.deployments
    if await deployments.for_owner(owner_id):
        return
    spec = DeploymentSpec(**DEMO_DEPLOYMENT)  # type: ignore[arg-type]
    row = await deployments.deploy(owner_id, spec, require_market=False)  # the sample's symbol, not yet replayed
    log.info("demo strategy deployed to paper", deployment=row.id, **DEMO_DEPLOYMENT)


async def seed(runtime: Runtime) -> None:
    written = await asyncio.to_thread(import_sample, runtime.settings)
    log.info("bundled sample in the candle library", candles_written=written)
    await deploy_demo_strategy(runtime)
