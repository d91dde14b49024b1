"""Backtest engines side by side: EMA(12)/EMA(26) long-only crossover, next-bar-open fills, no fees.

    .venv/bin/python -m bench.backtest_engines [--bars 1000000] [--real] [--skip-peers]

Data: 1,000,000 one-minute bars of a seeded random walk (``--real``: the 1,052,640 real BTCUSDT spot minutes of
../shared/data instead). Every engine gets the same signals: EMA seeded with the SMA of its first period
(``marketpulse.indicators.ema``, TA-Lib's convention), ``crossover``/``crossunder``; an up-cross entered at the next
open with all equity, a down-cross exited at the next open. Timings are the median of 3 runs after a warm-up and
cover the engine only (signals are computed once and reported on their own line), including its statistics.

Engines: ours (``Backtest.run``: trade list, equity curve and statistics; once with the comparison's rules and
once with every feature on — fees, slippage, stop-loss, take-profit, trailing stop, leverage with liquidation,
funding), a bare numba loop (the floor: the same fills and nothing else), backtesting.py and vectorbt when
importable (``pip install -e '.[bench]'``). backtesting.py is slow: it is timed on the first 100,000 bars and
extrapolated (said so in the table), and run once on all bars to compare trades. Trades and final equity are
compared to ours: backtesting.py buys whole units only, so that comparison uses a fixed 1-unit size on both sides.

The sweep: the 143 valid combinations of fast 5..20 × slow 20..60 step 5 (fast < slow) through
``marketpulse.backtest.sweep.search`` on all cores, in a child process whose process tree is sampled for memory
(sum of RSS, which counts pages forked workers share with their parent more than once, and sum of PSS, which
splits them fairly).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py draws a progress bar per run otherwise

from marketpulse.backtest import Backtest
from marketpulse.backtest.engine import EngineSettings
from marketpulse.backtest.sweep import Job, grid_combinations, search
from marketpulse.indicators import crossover, crossunder, ema
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.strategies import Signals, get_strategy

SHARED_BTC = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance_btcusdt_spot_1m.csv.gz"
CASH = 10_000.0


# --- data and signals -----------------------------------------------------------------------------------------
def random_walk(n: int, seed: int = 42) -> CandleFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    wick = np.abs(rng.normal(0, 5e-4, (2, n)))
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    time_ms = 1_704_067_200_000 + np.arange(n, dtype=np.int64) * 60_000
    return CandleFrame(time_ms, open_, high, low, close, rng.uniform(1, 10, n), "WALK", "1m")


def real_minutes() -> CandleFrame:
    import pyarrow as pa

    from marketpulse.marketdata.klines_csv import read_klines_frame

    f = read_klines_frame(SHARED_BTC)["BTCUSDT"]
    # Own copies of the six columns, then hand the CSV reader's buffers back: the sweep's memory is the subject.
    frame = CandleFrame(*(np.array(getattr(f, k)) for k in ("time", "open", "high", "low", "close", "volume")),
                        f.symbol, f.interval)
    del f
    pa.default_memory_pool().release_unused()
    return frame


def ema_cross_signals(c: CandleFrame, fast: int = 12, slow: int = 26) -> Signals:
    f, s = ema(c.close, fast), ema(c.close, slow)
    up, down = crossover(f, s), crossunder(f, s)
    return Signals(up, down, np.zeros_like(up), np.zeros_like(up))


# --- timing ---------------------------------------------------------------------------------------------------
CPU_TIMES: dict[int, float] = {}  # id(result) -> median CPU seconds of the run that made it


def median_time(fn: Callable[[], Any], runs: int = 3) -> tuple[float, Any]:
    """Median wall time of `runs` calls after a warm-up; the median CPU time of this thread goes to CPU_TIMES.

    CPU time is reported beside wall time because the machine is shared: other work on its two cores stretches
    wall time, not the CPU time a single-threaded engine needs."""
    result = fn()  # warm-up (compilation, caches)
    walls, cpus = [], []
    for _ in range(runs):
        began, began_cpu = time.perf_counter(), time.thread_time()
        result = fn()
        walls.append(time.perf_counter() - began)
        cpus.append(time.thread_time() - began_cpu)
    CPU_TIMES[id(result)] = statistics.median(cpus)
    return statistics.median(walls), result


def cpu(result: Any) -> str:
    return f"{CPU_TIMES[id(result)]:.4f} s"


# --- engines --------------------------------------------------------------------------------------------------
@njit(cache=True)
def bare_loop(open_: Any, close: Any, entries: Any, exits: Any, cash: float) -> tuple[float, int]:
    """The floor: next-open fills of all equity, mark to close, nothing else (no stats, no trade list)."""
    units = 0.0
    trades = 0
    enter = leave = False
    equity = cash
    for i in range(open_.shape[0]):
        if enter and units == 0.0:
            units = cash / open_[i]
            cash = 0.0
        elif leave and units > 0.0:
            cash = units * open_[i]
            units = 0.0
            trades += 1
        equity = cash + units * close[i]
        enter, leave = entries[i], exits[i]
    return equity, trades


ALL_FEATURES = {"fee_bps": 4.0, "maker_fee_bps": 2.0, "slippage_bps": 1.0, "stop_loss": 0.05, "take_profit": 0.2,
                "trailing_stop": 0.08, "leverage": 2.0, "maint_margin": 0.005, "funding_rate": 0.0001}


def ours(c: CandleFrame, sig: Signals, **features: Any) -> Any:
    return Backtest(c, sig, cash=CASH, long_only=True, **features).run()


def backtesting_py(c: CandleFrame, sig: Signals, units: float | None) -> Any:
    import backtesting
    import pandas as pd

    up, down = sig.long_entries, sig.long_exits

    class Cross(backtesting.Strategy):
        def init(self) -> None:
            self.up = self.I(lambda: up.astype(float), name="up", plot=False)
            self.down = self.I(lambda: down.astype(float), name="down", plot=False)

        def next(self) -> None:
            if self.up[-1] and not self.position:
                self.buy(size=units) if units else self.buy()
            elif self.down[-1] and self.position:
                self.position.close()

    df = pd.DataFrame({"Open": c.open, "High": c.high, "Low": c.low, "Close": c.close, "Volume": c.volume},
                      index=pd.to_datetime(c.time, unit="ms"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return backtesting.Backtest(df, Cross, cash=CASH * 1000 if units else CASH, commission=0.0).run()


def vectorbt_run(c: CandleFrame, sig: Signals) -> Any:
    import vectorbt as vbt

    # vectorbt fills on the signal's own bar: shift the signals one bar and fill at that bar's open.
    entries = np.concatenate(([False], sig.long_entries[:-1]))
    exits = np.concatenate(([False], sig.long_exits[:-1]))
    return vbt.Portfolio.from_signals(c.close, entries, exits, price=c.open, init_cash=CASH, fees=0.0, freq="1min")


def closed_trades_match_backtesting_py(c: CandleFrame, sig: Signals) -> str:
    theirs = backtesting_py(c, sig, units=1)
    mine = Backtest(c, sig, cash=CASH * 1000, units=1, long_only=True).run()
    closed = [t for t in mine.trades if t.exit_time is not None]
    tt = theirs["_trades"]
    entry_ms = tt["EntryTime"].astype("datetime64[ms]").astype(np.int64).to_numpy()
    same = (len(closed) == len(tt)
            and [t.entry_time for t in closed] == list(entry_ms)
            and [t.entry_price for t in closed] == list(tt["EntryPrice"])
            and [t.exit_price for t in closed] == list(tt["ExitPrice"]))
    equity_diff = abs(mine.stats.final_equity - float(theirs["Equity Final [$]"]))
    return (f"{'identical' if same else 'DIFFERENT'} trades ({len(closed):,} closed), final equity "
            f"{mine.stats.final_equity:,.6f} vs {float(theirs['Equity Final [$]']):,.6f} (|Δ| {equity_diff:.2e})")


# --- sweep in a child process, memory of its process tree sampled --------------------------------------------
def tree_memory_kib(root: int) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) in KiB over `root` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    rss = pss = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss


def sweep_in_child(real: bool, bars: int, workers: int) -> dict[str, Any]:
    """Run the sweep in a fresh process; sample its process tree's memory while it loads the candles and, apart,
    while it sweeps (the child prints "sweeping" between the two)."""
    cmd = [sys.executable, "-m", "bench.backtest_engines", "--sweep-child", "--bars", str(bars),
           "--workers", str(workers)] + (["--real"] if real else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    peaks = {"load": [0, 0], "sweep": [0, 0]}
    phase = ["load"]

    def sample() -> None:
        while proc.poll() is None:
            rss, pss = tree_memory_kib(proc.pid)
            peak = peaks[phase[0]]
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        if line.strip() == "sweeping":
            phase[0] = "sweep"
        lines.append(line)
    proc.wait()
    sampler.join()
    result: dict[str, Any] = json.loads(lines[-1])
    result["peak_rss_mib"], result["peak_pss_mib"] = peaks["sweep"][0] / 1024, peaks["sweep"][1] / 1024
    result["load_rss_mib"], result["load_pss_mib"] = peaks["load"][0] / 1024, peaks["load"][1] / 1024
    return result


def sweep_child(real: bool, bars: int, workers: int) -> None:
    c = real_minutes() if real else random_walk(bars)
    combos = grid_combinations(get_strategy("ema_cross"), {"fast": range(5, 21), "slow": range(20, 61, 5)})
    job = Job("ema_cross", EngineSettings(long_only=True), CASH, "sharpe")
    search(c.slice(0, 5000), job, combos[:2], workers=1)  # compile and load caches before timing
    print("sweeping", flush=True)
    began, cpu_before = time.perf_counter(), _cpu_seconds_with_children()
    rows = search(c, job, combos, workers=workers)  # the pool's workers are reaped here: their CPU is counted
    seconds = time.perf_counter() - began
    cpu_seconds = _cpu_seconds_with_children() - cpu_before
    best = rows[0]
    print(json.dumps({"combinations": len(combos), "seconds": seconds, "cpu_seconds": cpu_seconds,
                      "workers": workers, "best": best.params, "best_sharpe": best.score}))


def _cpu_seconds_with_children() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# --- report ---------------------------------------------------------------------------------------------------
def fmt_rate(bars: int, seconds: float) -> str:
    rate = bars / seconds
    return f"{rate / 1e6:.1f} M" if rate >= 1e6 else f"{rate / 1e3:.0f} k"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--real", action="store_true", help="the real BTCUSDT minutes of ../shared/data")
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--sweep-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sweep_child:
        sweep_child(args.real, args.bars, args.workers)
        return

    c = real_minutes() if args.real else random_walk(args.bars)
    n = len(c)
    data = f"real BTCUSDT spot 1m ({n:,} bars)" if args.real else f"seeded random walk ({n:,} one-minute bars)"
    sig_seconds, sig = median_time(lambda: ema_cross_signals(c))
    rows: list[tuple[str, str, str, str, str]] = []
    notes: list[str] = []

    t_plain, plain = median_time(lambda: ours(c, sig))
    rows.append(("marketpulse (trades, equity, stats)", f"{t_plain:.4f} s", cpu(plain), fmt_rate(n, t_plain),
                 f"{plain.stats.trades:,} trades, final equity {plain.stats.final_equity:,.2f}"))
    t_all, every = median_time(lambda: ours(c, sig, **ALL_FEATURES))
    rows.append(("marketpulse, every feature on", f"{t_all:.4f} s", cpu(every), fmt_rate(n, t_all),
                 f"{every.stats.trades:,} trades; fees, slippage, SL/TP/trailing, 2x leverage + liquidation, funding"))
    t_bare, bare = median_time(lambda: bare_loop(c.open, c.close, sig.long_entries, sig.long_exits, CASH))
    bare_equity, bare_trades = bare
    rows.append(("bare numba loop (the floor)", f"{t_bare:.4f} s", cpu(bare), fmt_rate(n, t_bare),
                 f"{bare_trades:,} trades, final equity {bare_equity:,.2f}"
                 f" ({'=' if abs(bare_equity - plain.stats.final_equity) < 1e-6 * CASH else '≠'} ours)"))

    if not args.skip_peers:
        try:
            import backtesting

            k = min(n, 100_000)
            t_bt, bt_small = median_time(lambda: backtesting_py(c.slice(0, k), sig_slice(sig, k), None))
            extrapolated = t_bt * n / k
            began = time.perf_counter()
            bt_full = backtesting_py(c, sig, None)
            t_full = time.perf_counter() - began
            rows.append((f"backtesting.py {backtesting.__version__}", f"{extrapolated:.2f} s (100k-bar median × "
                         f"{n / k:.1f}); one full run {t_full:.2f} s",
                         f"{CPU_TIMES[id(bt_small)] * n / k:.2f} s (× {n / k:.1f})", fmt_rate(n, extrapolated),
                         f"{len(bt_full['_trades']):,} closed trades, final equity "
                         f"{float(bt_full['Equity Final [$]']):,.2f} (whole units only)"))
            notes.append("backtesting.py vs marketpulse, 1-unit size on both: "
                         + closed_trades_match_backtesting_py(c, sig))
            del bt_small
        except ImportError:
            notes.append("backtesting.py not installed (pip install -e '.[bench]')")
        try:
            import vectorbt

            t_vbt, pf = median_time(lambda: vectorbt_run(c, sig))
            vbt_equity = float(pf.final_value())
            rows.append((f"vectorbt {vectorbt.__version__} (numba)", f"{t_vbt:.4f} s", cpu(pf), fmt_rate(n, t_vbt),
                         f"{int(pf.trades.count()):,} trades, final equity {vbt_equity:,.2f} "
                         f"(|Δ| vs ours {abs(vbt_equity - plain.stats.final_equity):.2e})"))
        except ImportError:
            notes.append("vectorbt not installed")

    sweep = sweep_in_child(args.real, n, args.workers)
    sweep_one = sweep_in_child(args.real, n, 1)
    load = os.getloadavg()
    print(f"\n{os.cpu_count()} cores, Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"load average {load[0]:.1f}; data: {data}; signals (2 EMAs + crossings) {sig_seconds:.4f} s\n")
    print("| engine | median wall time | median CPU time | bars per second (wall) | notes |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    for s in (sweep, sweep_one):
        print(f"\nsweep: {s['combinations']} combinations in {s['seconds']:.2f} s on {s['workers']} worker(s) = "
              f"{s['combinations'] / s['seconds']:.1f} combinations/s (CPU {s['cpu_seconds']:.2f} s = "
              f"{s['combinations'] / s['cpu_seconds']:.1f} combinations per CPU-second); peak memory of the "
              f"process tree while sweeping {s['peak_pss_mib']:.0f} MiB PSS ({s['peak_rss_mib']:.0f} MiB summed RSS; "
              f"{s['load_pss_mib']:.0f} MiB PSS while loading the candles); "
              f"best {s['best']} (sharpe {s['best_sharpe']:.3f})")
    for note in notes:
        print(f"\n{note}")


def sig_slice(sig: Signals, k: int) -> Signals:
    return Signals(sig.long_entries[:k], sig.long_exits[:k], sig.short_entries[:k], sig.short_exits[:k])


if __name__ == "__main__":
    main()
