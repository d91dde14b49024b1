"""Hand-computed trades on tiny series: every engine rule checked against arithmetic done by hand."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from marketpulse.backtest import Backtest, Engine, EngineSettings
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.strategies.base import Signals

HOUR = 3_600_000


def frame(bars: Sequence[tuple[float, float, float, float]], start: int = 0, step: int = HOUR) -> CandleFrame:
    o, h, lo, c = (np.array(col, dtype=np.float64) for col in zip(*bars, strict=True))
    t = start + np.arange(len(bars), dtype=np.int64) * step
    return CandleFrame(t, o, h, lo, c, np.ones(len(bars)), "TEST", "1h")


def flat(opens: Sequence[float]) -> CandleFrame:
    """Bars whose high/low/close equal the open (no intrabar range): only open fills matter."""
    return frame([(x, x, x, x) for x in opens])


def signals(n: int, le: Sequence[int] = (), lx: Sequence[int] = (), se: Sequence[int] = (),
            sx: Sequence[int] = ()) -> Signals:
    arrays = []
    for idx in (le, lx, se, sx):
        a = np.zeros(n, dtype=np.bool_)
        a[list(idx)] = True
        arrays.append(a)
    return Signals(*arrays)


def test_signal_on_close_fills_at_next_open() -> None:
    candles = flat([100, 101, 102, 103, 104])
    result = Backtest(candles, signals(5, le=[0], lx=[2])).run()
    (trade,) = result.trades
    units = 10_000 / 101
    assert (trade.side, trade.entry_time, trade.exit_time) == ("long", HOUR, 3 * HOUR)
    assert (trade.entry_price, trade.exit_price) == (101, 103)
    assert trade.size == pytest.approx(units)
    assert trade.pnl == pytest.approx(units * 2)
    assert result.stats.final_equity == pytest.approx(10_000 + units * 2)
    marks = [10_000, 10_000, 10_000 + units, 10_000 + 2 * units, 10_000 + 2 * units]  # at each close
    assert list(result.equity) == pytest.approx(marks)


def test_signal_on_last_bar_is_never_filled() -> None:
    result = Backtest(flat([100, 101, 102]), signals(3, le=[2])).run()
    assert result.trades == [] and result.stats.final_equity == 10_000


def test_fees_in_bps_on_both_sides() -> None:
    result = Backtest(flat([100, 101, 102, 103, 104]), signals(5, le=[0], lx=[2]), fee_bps=10).run()
    (trade,) = result.trades
    units = 10_000 / (101 * 1.001)  # sized so cash also covers the entry fee
    fees = units * 101 * 0.001 + units * 103 * 0.001
    assert trade.size == pytest.approx(units)
    assert trade.fees == pytest.approx(fees)
    assert trade.pnl == pytest.approx(units * 2 - fees)
    assert result.stats.final_equity == pytest.approx(10_000 + units * 2 - fees)


def test_slippage_moves_fills_against_the_trader() -> None:
    result = Backtest(flat([100, 100, 100, 100]), signals(4, le=[0], lx=[1]), slippage_bps=50).run()
    (trade,) = result.trades
    assert trade.entry_price == pytest.approx(100.5) and trade.exit_price == pytest.approx(99.5)
    assert trade.pnl == pytest.approx(-trade.size * 1.0)


def test_fixed_units_and_fraction_of_equity() -> None:
    assert Backtest(flat([100, 100, 110]), signals(3, le=[0]), units=3).run().trades[0].size == 3
    half = Backtest(flat([100, 100, 110]), signals(3, le=[0]), size=0.5).run()
    assert half.trades[0].size == pytest.approx(50)
    assert half.stats.final_equity == pytest.approx(10_500)
    # the still-open trade is valued at the last close and has no exit time
    assert half.trades[0].exit_time is None and half.trades[0].pnl == pytest.approx(500)


def test_short_profits_when_price_falls() -> None:
    result = Backtest(flat([100, 100, 90, 80]), signals(4, se=[0], sx=[2])).run()
    (trade,) = result.trades
    assert trade.side == "short" and trade.entry_price == 100 and trade.exit_price == 80
    assert trade.pnl == pytest.approx(100 * 20)


def test_long_only_ignores_short_entries_but_uses_them_to_exit() -> None:
    result = Backtest(flat([100, 100, 110, 120, 90, 80]), signals(6, le=[0], se=[2]), long_only=True).run()
    (trade,) = result.trades
    assert trade.side == "long" and trade.exit_price == 120


def test_opposite_entry_flips_the_position_at_one_open() -> None:
    result = Backtest(flat([100, 100, 110, 120, 90]), signals(5, le=[0], se=[2])).run()
    long_trade, short_trade = result.trades
    assert long_trade.exit_time == short_trade.entry_time == 3 * HOUR
    assert short_trade.side == "short" and short_trade.entry_price == 120 and short_trade.exit_time is None
    units_short = (10_000 + 100 * 20) / 120
    assert result.stats.final_equity == pytest.approx(12_000 + units_short * 30)


def test_stop_loss_fills_at_stop_or_worse_open() -> None:
    candles = frame([(100, 100, 100, 100), (100, 101, 99, 100), (100, 100, 94, 96), (96, 96, 96, 96)])
    (trade,) = Backtest(candles, signals(4, le=[0]), stop_loss=0.05).run().trades
    assert (trade.exit_price, trade.exit_reason, trade.exit_time) == (95, "stop_loss", 2 * HOUR)
    gap = frame([(100, 100, 100, 100), (100, 101, 99, 100), (90, 91, 89, 90)])
    (trade,) = Backtest(gap, signals(3, le=[0]), stop_loss=0.05).run().trades
    assert trade.exit_price == 90  # gapped through the stop: the open is the first price available


def test_take_profit_fills_at_its_price() -> None:
    candles = frame([(100, 100, 100, 100), (100, 101, 99, 100), (101, 111, 100, 108)])
    (trade,) = Backtest(candles, signals(3, le=[0]), take_profit=0.1).run().trades
    assert (trade.exit_price, trade.exit_reason) == (pytest.approx(110), "take_profit")


def test_stop_and_target_in_one_bar_assumes_the_stop_came_first() -> None:
    candles = frame([(100, 100, 100, 100), (100, 100, 100, 100), (100, 115, 90, 100)])
    (trade,) = Backtest(candles, signals(3, le=[0]), stop_loss=0.05, take_profit=0.1).run().trades
    assert trade.exit_reason == "stop_loss" and trade.exit_price == 95


def test_trailing_stop_follows_the_high_of_previous_bars() -> None:
    candles = frame([
        (100, 100, 100, 100),
        (100, 110, 100, 108),  # entry at 100; high 110 -> trail 99 from the next bar
        (108, 120, 108.5, 119),  # trail 99 untouched; high 120 -> trail 108
        (119, 119, 107, 107),  # falls through 108
    ])
    (trade,) = Backtest(candles, signals(4, le=[0]), trailing_stop=0.1).run().trades
    assert (trade.exit_reason, trade.exit_price, trade.exit_time) == ("trailing_stop", pytest.approx(108), 3 * HOUR)


def test_short_stop_loss_is_above_entry() -> None:
    candles = frame([(100, 100, 100, 100), (100, 101, 99, 100), (100, 103, 99, 101)])
    (trade,) = Backtest(candles, signals(3, se=[0]), stop_loss=0.02).run().trades
    assert trade.side == "short" and trade.exit_price == 102 and trade.pnl == pytest.approx(-100 * 2)


def test_constant_funding_every_8h() -> None:
    # hourly bars from 00:00: funding at 08:00 and 16:00 opens; long pays units * open * rate.
    candles = flat([100.0] * 20)
    result = Backtest(candles, signals(20, le=[0]), units=10, funding_rate=0.001).run()
    (trade,) = result.trades
    assert trade.funding == pytest.approx(2 * 10 * 100 * 0.001)
    assert result.stats.final_equity == pytest.approx(10_000 - 2.0)
    short = Backtest(candles, signals(20, se=[0]), units=10, funding_rate=0.001).run()
    assert short.stats.final_equity == pytest.approx(10_000 + 2.0)  # shorts receive a positive rate


def test_funding_series_charged_at_first_bar_at_or_after_its_time() -> None:
    candles = flat([100.0, 100.0, 200.0, 200.0])
    funding = ([HOUR + 1, 3 * HOUR], [0.01, -0.01])  # lands on bar 2 (open 200) and bar 3 (open 200)
    result = Backtest(candles, signals(4, le=[0]), units=1, funding=funding).run()
    assert result.trades[0].funding == pytest.approx(2.0 - 2.0)
    result = Backtest(candles, signals(4, le=[0]), units=1, funding=([HOUR + 1], [0.01])).run()
    assert result.stats.final_equity == pytest.approx(10_000 + 100 - 2.0)


def test_leverage_liquidation_loses_the_isolated_margin() -> None:
    # size 0.5 of 10k as margin at 10x: 50k notional, 500 units at 100; liq = 100 * 0.9 / 0.995 = 90.45
    candles = frame([(100, 100, 100, 100), (100, 100, 100, 100), (95, 96, 91, 92), (92, 93, 90, 91)])
    result = Backtest(candles, signals(4, le=[0]), size=0.5, leverage=10, maint_margin=0.005).run()
    (trade,) = result.trades
    assert trade.exit_reason == "liquidation" and trade.exit_time == 3 * HOUR
    assert trade.exit_price == pytest.approx(100 * 0.9 / 0.995)
    assert trade.pnl == pytest.approx(-5_000)
    assert result.stats.final_equity == pytest.approx(5_000)
    # the same move without leverage is an ordinary loss
    plain = Backtest(candles, signals(4, le=[0]), size=0.5, maint_margin=0.005).run()
    assert plain.trades[0].exit_time is None


def test_stop_above_liquidation_saves_the_margin() -> None:
    candles = frame([(100, 100, 100, 100), (100, 100, 100, 100), (95, 96, 89, 92)])
    result = Backtest(candles, signals(3, le=[0]), size=0.5, leverage=10, maint_margin=0.005, stop_loss=0.06).run()
    (trade,) = result.trades
    assert trade.exit_reason == "stop_loss" and trade.exit_price == 94 and trade.pnl == pytest.approx(-500 * 6)


def test_limit_order_fills_at_limit_or_better_and_day_orders_expire() -> None:
    engine = Engine(cash=10_000, settings=EngineSettings(units=1, maker_fee_bps=10))
    engine.on_bar(0, 100, 100, 100, 100)
    engine.submit("buy", "limit", time_ms=0, price=95)
    engine.on_bar(HOUR, 99, 99, 96, 97)  # low 96 > 95: waits
    assert engine.position == 0 and len(engine.working_orders()) == 1
    engine.on_bar(2 * HOUR, 97, 98, 94, 96)
    assert engine.position == 1 and engine.entry_price == 95
    assert engine.cash == pytest.approx(10_000 - 95 * 0.001)
    gap = Engine(settings=EngineSettings(units=1))
    gap.on_bar(0, 100, 100, 100, 100)
    gap.submit("buy", "limit", time_ms=0, price=95)
    gap.on_bar(HOUR, 93, 94, 92, 93)
    assert gap.entry_price == 93  # opened below the limit: the better price
    day = Engine(settings=EngineSettings(units=1))
    day.on_bar(0, 100, 100, 100, 100)
    day.submit("buy", "limit", time_ms=0, price=95, tif="day")
    day.on_bar(86_400_000, 94, 94, 90, 92)  # next UTC day: expired before this bar could fill it
    assert day.position == 0 and day.working_orders() == []


def test_stop_order_and_ioc() -> None:
    engine = Engine(settings=EngineSettings(units=2, slippage_bps=100))
    engine.on_bar(0, 100, 100, 100, 100)
    engine.submit("buy", "stop", time_ms=0, price=105)
    engine.on_bar(HOUR, 103, 106, 102, 104)
    assert engine.position == 2 and engine.entry_price == pytest.approx(105 * 1.01)
    engine.submit("sell", "limit", time_ms=HOUR, price=110, tif="ioc", action="close")
    engine.on_bar(2 * HOUR, 104, 111, 104, 109)  # not marketable at the open: cancelled though the high reached it
    assert engine.position == 2 and engine.working_orders() == []
    engine.submit("sell", "stop", time_ms=2 * HOUR, price=100, action="close")
    closed = engine.on_bar(3 * HOUR, 98, 99, 97, 98)  # gapped below the stop: open, then slippage
    assert [t.exit_price for t in closed] == [pytest.approx(98 * 0.99)] and engine.position == 0


def test_cancel_order() -> None:
    engine = Engine(settings=EngineSettings(units=1))
    engine.on_bar(0, 100, 100, 100, 100)
    oid = engine.submit("buy", "limit", time_ms=0, price=99)
    assert engine.cancel(oid) and not engine.cancel(oid)
    engine.on_bar(HOUR, 99, 99, 90, 95)
    assert engine.position == 0
