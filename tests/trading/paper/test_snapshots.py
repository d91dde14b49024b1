"""Deployment snapshots survive upgrades: a snapshot written by the previous format (the raw engine arrays in an
npz, committed as a fixture) still restores, and the deployment then trades exactly as an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from marketpulse.backtest import Engine, EngineSettings, Trade, core
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.intervals import interval_ms
from marketpulse.marketdata.klines_csv import read_klines_frame
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.sample import btcusdt_spot_1m_path
from marketpulse.strategies import get_strategy
from marketpulse.trading.paper.strategy_runner import (
    SNAPSHOT_FORMAT,
    StrategyRunner,
    UnknownSnapshotFormat,
    read_engine_snapshot,
    trades_in_snapshot,
)

FIXTURES = Path(__file__).parent / "fixtures"
STRATEGY, PARAMS, INTERVAL = "ema_cross", {"fast": 5, "slow": 20}, "15m"
CUT = 1447  # minutes before the snapshot: mid-bucket, after a few closed trades, with a position open


@pytest.fixture(scope="module")
def minutes() -> CandleFrame:
    frame = read_klines_frame(btcusdt_spot_1m_path(), symbol="BTCUSDT", interval="1m")["BTCUSDT"]
    return frame.slice(0, 2 * 1440)


def new_runner() -> StrategyRunner:
    cls = get_strategy(STRATEGY)
    engine = Engine(10_000.0, EngineSettings(taker_fee_bps=4.0, maker_fee_bps=2.0))
    return StrategyRunner(cls(), cls.resolve_params(PARAMS), interval_ms(INTERVAL), engine, history_bars=500,
                          symbol="BTCUSDT", interval=INTERVAL)


def feed(runner: StrategyRunner, minutes: CandleFrame, start: int, stop: int) -> None:
    for i in range(start, stop):
        c = Candle("BTCUSDT", "1m", int(minutes.time[i]), float(minutes.open[i]), float(minutes.high[i]),
                   float(minutes.low[i]), float(minutes.close[i]), float(minutes.volume[i]), 0.0)
        if runner.pending_close(c):
            runner.decide()
        _, complete = runner.on_minute(c)
        if complete:
            runner.decide()


def uninterrupted(minutes: CandleFrame) -> list[Trade]:
    runner = new_runner()
    feed(runner, minutes, 0, len(minutes))
    return runner.all_trades()


def write_fixture(minutes: CandleFrame, name: str) -> None:
    """How the committed fixture was made (with the code of its format): `python -c` this with the old code."""
    runner = new_runner()
    feed(runner, minutes, 0, CUT)
    (FIXTURES / f"{name}-engine.bin").write_bytes(runner.snapshot())
    (FIXTURES / f"{name}-history.bin").write_bytes(runner.history_snapshot())


def resumed(minutes: CandleFrame, engine_snapshot: bytes, history_snapshot: bytes) -> list[Trade]:
    runner = new_runner()
    runner.restore(engine_snapshot, history_snapshot)
    feed(runner, minutes, CUT, len(minutes))
    return runner.all_trades()


def test_a_snapshot_in_the_previous_format_resumes_the_same_trades(minutes: CandleFrame) -> None:
    engine_v1 = (FIXTURES / "snapshot-v1-engine.bin").read_bytes()
    history_v1 = (FIXTURES / "snapshot-v1-history.bin").read_bytes()
    assert engine_v1.startswith(b"PK")  # really the old npz layout
    expected = uninterrupted(minutes)
    assert len(expected) > 5
    assert resumed(minutes, engine_v1, history_v1) == expected
    closed_before_cut = [t for t in expected if t.exit_time is not None and t.exit_time < minutes.time[CUT]]
    assert trades_in_snapshot(engine_v1)[: len(closed_before_cut)] == closed_before_cut


def test_the_current_format_is_versioned_named_and_resumes_the_same_trades(minutes: CandleFrame) -> None:
    runner = new_runner()
    feed(runner, minutes, 0, CUT)
    engine, history = runner.snapshot(), runner.history_snapshot()
    raw = msgspec.msgpack.decode(engine)
    assert raw["format"] == SNAPSHOT_FORMAT == msgspec.msgpack.decode(history)["format"]
    assert raw["state"]["cash"] == runner.engine.cash
    assert {t["exit_reason"] for t in raw["trades"]} <= {"order", "stop_loss", "take_profit", "trailing_stop"}
    assert resumed(minutes, engine, history) == uninterrupted(minutes)


def test_exit_reasons_are_stored_by_name_not_position(monkeypatch: pytest.MonkeyPatch, minutes: CandleFrame) -> None:
    runner = new_runner()
    feed(runner, minutes, 0, CUT)
    engine = runner.snapshot()
    reasons = [t.exit_reason for t in runner.trades]
    monkeypatch.setattr(core, "EXIT_REASONS", tuple(reversed(core.EXIT_REASONS)))  # a later release reorders them
    assert [t.exit_reason for t in trades_in_snapshot(engine)[: len(reasons)]] == reasons


def test_an_engine_field_added_or_removed_later_keeps_a_running_deployment_resumable(minutes: CandleFrame) -> None:
    runner = new_runner()
    feed(runner, minutes, 0, CUT)
    raw = msgspec.msgpack.decode(runner.snapshot())
    raw["state"]["a_field_from_a_newer_release"] = 1.0  # unknown to this engine: ignored
    del raw["state"]["sum_down2"]  # unknown to the release that wrote it: the fresh engine's value
    again = new_runner()
    again.restore(msgspec.msgpack.encode(raw), runner.history_snapshot())
    assert again.engine.position == runner.engine.position
    assert again.engine.state[core.S_SUM_DOWN2] == 0.0
    assert again.last_minute == runner.last_minute


def test_a_snapshot_of_an_unknown_format_is_refused_by_name() -> None:
    with pytest.raises(UnknownSnapshotFormat, match="format 9"):
        read_engine_snapshot(msgspec.msgpack.encode({"format": 9}))
