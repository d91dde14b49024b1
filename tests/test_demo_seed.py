"""`pulse demo` seeds the candle library with the bundled sample and deploys one strategy to paper, once."""

from __future__ import annotations

import pytest

from marketpulse.demo import DEMO_DEPLOYMENT, deploy_demo_strategy, import_sample
from marketpulse.marketdata.library import CandleLibrary
from marketpulse.runtime import Runtime


@pytest.mark.slow
def test_sample_import_is_complete_and_idempotent(tmp_path) -> None:
    from marketpulse.settings import Settings

    settings = Settings(data_dir=tmp_path)
    assert import_sample(settings) > 80_000
    library = CandleLibrary(tmp_path / "library")
    keys = {(i.key.exchange, i.key.symbol, i.key.interval) for i in library.list()}
    assert ("binance", "BTCUSDT", "1m") in keys and ("binance_swap", "BTCUSDT", "1h") in keys
    assert len(keys) > 400  # every perpetual of the sample week
    assert import_sample(settings) == 0  # a restarted demo writes nothing twice


async def test_demo_strategy_is_deployed_once(runtime: Runtime) -> None:
    await deploy_demo_strategy(runtime)
    await deploy_demo_strategy(runtime)
    deployments = runtime.services.deployments
    rows = await deployments.for_owner("default")
    assert [(r.strategy, r.symbol, r.interval, r.status) for r in rows] == [
        (DEMO_DEPLOYMENT["strategy"], DEMO_DEPLOYMENT["symbol"], DEMO_DEPLOYMENT["interval"], "running")
    ]
