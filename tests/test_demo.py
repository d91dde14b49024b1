"""`pulse demo` seeds the candle library with the bundled sample and deploys one strategy to paper, once; a restarted
demo carries on its market time from the stored state."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from marketpulse.demo import (
    DEMO_DEPLOYMENT,
    deploy_demo_strategy,
    import_sample,
    resume_market_time,
    seed_signal_config,
)
from marketpulse.detection.models import VolumeAlert
from marketpulse.detection.service import VolumeAlertStore
from marketpulse.marketdata.intervals import HOUR_MS, MINUTE_MS
from marketpulse.marketdata.library import CandleLibrary
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.replay import ReplaySource
from marketpulse.marketdata.store import save_candles
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.accounts import sign_in_user


@pytest.mark.slow
def test_sample_import_is_complete_and_idempotent(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert import_sample(settings) > 80_000
    library = CandleLibrary(tmp_path / "library")
    keys = {(i.key.exchange, i.key.symbol, i.key.interval) for i in library.list()}
    assert ("binance", "BTCUSDT", "1m") in keys and ("binance_swap", "BTCUSDT", "1h") in keys
    assert len(keys) > 400  # every perpetual of the sample week
    assert import_sample(settings) == 0  # a restarted demo writes nothing twice


async def test_demo_strategy_is_deployed_once(runtime: Runtime) -> None:
    admin = await sign_in_user(runtime)  # the demo deploys it for its seeded admin
    await deploy_demo_strategy(runtime, admin.user_id)
    await deploy_demo_strategy(runtime, admin.user_id)
    deployments = runtime.services.deployments
    rows = await deployments.for_owner(admin.user_id)
    assert [(r.strategy, r.symbol, r.interval, r.status) for r in rows] == [
        (DEMO_DEPLOYMENT["strategy"], DEMO_DEPLOYMENT["symbol"], DEMO_DEPLOYMENT["interval"], "running")
    ]


async def test_demo_signal_config_is_computed_and_subscribed_once(runtime: Runtime) -> None:
    admin = await sign_in_user(runtime)
    first = await seed_signal_config(runtime, admin.user_id, "pro")
    again = await seed_signal_config(runtime, admin.user_id, "pro")
    signals = runtime.services.signals
    configs = await signals.list_configs()
    assert [(c.symbol, c.timeframe, c.strategy, c.computed) for c in configs] == [("BTCUSDT", "5m", "ut_bot", True)]
    assert first == again and first.endswith(f"/webhook/tradingview/{configs[0].token}")
    subs = await signals.subscriptions(admin.user_id)
    assert [s.config_id for s in subs] == [configs[0].id] and len(subs[0].channels) == 1


# --- a restarted demo carries on its market time ----------------------------------------------------------------

MARKET_T0 = 1_760_126_400_000  # 2025-10-10 20:00 UTC


def _alert(t_ms: int) -> VolumeAlert:
    return VolumeAlert(
        symbol="BTCUSDT", asset="BTC", current_volume=9e6, previous_volume=1e6, volume_ratio=9.0, price=1.0,
        funding_rate=None, candle_direction="bullish", alert_type="SPIKE", message="m", timestamp=t_ms,
        hour_timestamp=t_ms // HOUR_MS * HOUR_MS,
    )


async def test_empty_database_keeps_the_configured_start(settings: Settings) -> None:
    assert (await resume_market_time(settings)).replay_start is None


async def test_restart_resumes_after_the_newest_stored_row(runtime: Runtime, settings: Settings) -> None:
    candle = Candle("BTCUSDT", "1m", MARKET_T0 + 30 * MINUTE_MS, 1, 1, 1, 1, 1, 1)
    await save_candles(runtime.sessions, "replay", [candle])
    alert_ms = MARKET_T0 + 35 * MINUTE_MS + 17_000  # the newest row: an alert, mid-minute
    await VolumeAlertStore(runtime.sessions).save([_alert(alert_ms)])

    resumed = await resume_market_time(settings)

    assert resumed.replay_start == datetime.fromtimestamp((MARKET_T0 + 36 * MINUTE_MS) / 1000, tz=UTC)
    # A later configured start is kept (the replay never goes back, but may jump ahead when asked to).
    later = datetime.fromtimestamp((MARKET_T0 + 2 * HOUR_MS) / 1000, tz=UTC)
    assert (await resume_market_time(settings.model_copy(update={"replay_start": later}))).replay_start == later
    # Live data runs on the wall clock: nothing to resume.
    assert (await resume_market_time(settings.model_copy(update={"source": "binance"}))).replay_start is None


async def test_resumed_replay_publishes_nothing_before_the_stored_state(runtime: Runtime, settings: Settings) -> None:
    newest = MARKET_T0 + 50 * MINUTE_MS
    await save_candles(runtime.sessions, "replay", [Candle("BTCUSDT", "1m", newest, 1, 1, 1, 1, 1, 1)])
    resumed = await resume_market_time(settings.model_copy(update={"replay_start": datetime.fromtimestamp(
        MARKET_T0 / 1000, tz=UTC)}))
    source = ReplaySource(resumed)
    assert source.clock.now_ms() >= newest + MINUTE_MS  # the market clock starts after every stored row
