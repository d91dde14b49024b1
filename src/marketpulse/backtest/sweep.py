"""Parameter search: grid and random search over a strategy's declared ranges, and walk-forward validation.

Each combination is one stats-only run of the engine core (no equity array, no trade list), so a combination
costs the strategy's signals plus one pass of ``core.run_bars``. Combinations are spread over threads: the engine
core and the indicator kernels are numba ``nogil`` and numpy releases the GIL in its array loops, so threads use
every core while sharing one copy of the candles (processes measured half the rate: fork, a second copy of the
memory it touches, and every indicator computed once per process). Indicator calls are memoized by
(function, input array, arguments) so e.g. EMA(12) is computed once and reused by every combination that needs it.

Walk-forward: the candles are cut into ``folds`` equal windows; for k = 0..folds-2 the search runs on window k
(in-sample), and the best combination is then scored on window k+1 (out-of-sample), which it has never seen.
Signals for a window are computed with the preceding bars as warm-up, and trading/statistics start at the window.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import Any, cast

import numpy as np

import marketpulse.indicators as indicators
from marketpulse.backtest import core
from marketpulse.backtest.engine import EngineSettings, bar_interval_ms, resolve_strategy
from marketpulse.backtest.stats import METRICS, Stats, stats_from_state
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.strategies.base import Param, Strategy

CACHE_BYTES = 256 * 2**20  # per worker; enough for ~30 float64 indicator arrays of 1M bars


@dataclass(frozen=True)
class SweepRow:
    params: dict[str, Any]
    stats: Stats
    score: float


@dataclass(frozen=True)
class Fold:
    index: int
    in_sample: tuple[int, int]  # epoch ms [start, end)
    out_sample: tuple[int, int]
    params: dict[str, Any]
    in_score: float
    out_score: float
    in_stats: Stats
    out_stats: Stats


def parse_range(param: Param, text: str) -> tuple[Any, ...]:
    """``--param`` values for a sweep: ``a:b:step`` (inclusive), ``a,b,c``, or a single value."""
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"parameter {param.name!r}: range {text!r} must be start:stop[:step]")
        lo, hi = param.parse(parts[0]), param.parse(parts[1])
        step = _parse_step(param, parts[2]) if len(parts) == 3 else (1 if param.kind is int else None)
        if step is None or not step > 0:
            raise ValueError(f"parameter {param.name!r}: range {text!r} needs a positive step")
        if hi < lo:
            raise ValueError(f"parameter {param.name!r}: range {text!r} runs backwards")
        count = int(math.floor((hi - lo) / step + 1e-9)) + 1
        return tuple(param.validate(round(lo + k * step, 12)) for k in range(count))
    return tuple(param.parse(part) for part in text.split(",") if part.strip())


def _parse_step(param: Param, text: str) -> float:
    """A step is a distance, not a value: it is read by kind but not held to the parameter's bounds."""
    try:
        return int(text) if param.kind is int else float(text)
    except ValueError:
        raise ValueError(f"parameter {param.name!r}: step {text!r} is not a {param.kind.__name__}") from None


def grid_combinations(strategy: type[Strategy], axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every valid combination: ``axes`` override the declared grids, other parameters keep their sweep grid."""
    fixed_axes = {name: list(values) for name, values in axes.items()}
    names = [p.name for p in strategy.params]
    grids = [fixed_axes.get(p.name, list(p.values())) for p in strategy.params]
    out = []
    for combo in _product(grids):
        params = dict(zip(names, combo, strict=True))
        try:
            strategy.check_params(params)
        except ValueError:
            continue
        out.append(params)
    return out


def _product(grids: list[list[Any]]) -> Iterator[tuple[Any, ...]]:
    if not grids:
        yield ()
        return
    for head in grids[0]:
        for rest in _product(grids[1:]):
            yield (head, *rest)


def random_combinations(strategy: type[Strategy], axes: Mapping[str, Sequence[Any]], count: int,
                        seed: int = 0) -> list[dict[str, Any]]:
    """``count`` distinct random valid combinations (fewer if the space is smaller), reproducible by ``seed``."""
    space = grid_combinations(strategy, axes)
    rng = np.random.default_rng(seed)
    if not space:
        return []
    picks = rng.choice(len(space), size=min(count, len(space)), replace=False)
    return [space[int(i)] for i in sorted(picks)]


# --- evaluation -----------------------------------------------------------------------------------------------
@contextmanager
def memoized_indicators(strategy: Strategy, cache: OrderedDict[tuple[Any, ...], Any] | None = None,
                        budget_bytes: int = CACHE_BYTES) -> Iterator[None]:
    """Within the block, the indicator functions the strategy's module imported return cached arrays for
    repeated (input array, arguments) calls. Arrays are keyed by identity: candles are never mutated.
    Pass the same ``cache`` to several blocks to share it (a worker's chunks)."""
    module = sys.modules[type(strategy).__module__]
    cache = OrderedDict() if cache is None else cache
    used = [sum(_nbytes(v) for v, _ in cache.values())]
    lock = threading.Lock()
    originals: dict[str, Callable[..., Any]] = {}
    for name, value in vars(module).items():
        if callable(value) and getattr(indicators, name, None) is value:
            originals[name] = cast(Callable[..., Any], value)

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def cached(*args: Any, **kwargs: Any) -> Any:
            key = (fn.__name__, *(id(a) if isinstance(a, np.ndarray) else a for a in args),
                   *sorted(kwargs.items()))
            with lock:  # sweep threads share the cache; the computation itself runs outside the lock
                if key in cache:
                    cache.move_to_end(key)
                    return cache[key][0]
            value = fn(*args, **kwargs)
            if isinstance(value, np.ndarray) and value.dtype == np.bool_:
                return value  # crossings etc.: specific to one combination, cheap, would only crowd the cache
            with lock:
                # Holding the inputs keeps them alive, so their ids cannot be reused by other arrays meanwhile.
                if key not in cache:
                    cache[key] = (value, args)
                    used[0] += _nbytes(value)
                while used[0] > budget_bytes and len(cache) > 1:
                    _, (old, _inputs) = cache.popitem(last=False)
                    used[0] -= _nbytes(old)
            return value
        return cached

    for name, fn in originals.items():
        setattr(module, name, wrap(fn))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)


def _nbytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, tuple):
        return sum(_nbytes(v) for v in value)
    return 64


@dataclass(frozen=True)
class Job:
    """What a worker needs besides the candles: the strategy, engine settings and where to trade."""

    strategy: str
    settings: EngineSettings
    cash: float
    metric: str


@dataclass(frozen=True)
class Window:
    """Bars [start, stop) to trade, with signals computed from ``warmup_start`` (made once, reused per combo)."""

    signal_frame: CandleFrame
    offset: int  # index of `start` inside signal_frame
    time: core.F64
    trade_frame: CandleFrame

    @classmethod
    def of(cls, candles: CandleFrame, start: int = 0, warmup_start: int | None = None,
           stop: int | None = None) -> Window:
        stop = len(candles) if stop is None else stop
        lo = start if warmup_start is None else warmup_start
        trade = candles.slice(start, stop)
        return cls(candles.slice(lo, stop), start - lo, trade.time.astype(np.float64), trade)


def evaluate(strategy: Strategy, window: Window, params: Mapping[str, Any], settings: EngineSettings,
             cash: float, interval_ms: float) -> Stats:
    """Stats of one combination over one window (no trade list, no equity array: the sweep's hot path)."""
    sig = strategy.signals(window.signal_frame, params)
    k, w = window.offset, window.trade_frame
    state = core.new_state(cash)
    core.run_bars(state, core.new_orders(), settings.cfg(), np.zeros((0, core.N_TRADE)), window.time, w.open,
                  w.high, w.low, w.close, np.empty(0), sig.long_entries[k:], sig.long_exits[k:],
                  sig.short_entries[k:], sig.short_exits[k:], np.empty(0))
    return stats_from_state(state, interval_ms)


def search(candles: CandleFrame, job: Job, combos: list[dict[str, Any]], *, workers: int | None = None,
           start: int = 0, warmup_start: int | None = None, stop: int | None = None) -> list[SweepRow]:
    """Score every combination on bars [start, stop); rows ranked best first by ``job.metric``."""
    if job.metric not in METRICS:
        raise ValueError(f"unknown metric {job.metric!r}; known: {', '.join(METRICS)}")
    workers = max(1, min(workers or os.cpu_count() or 1, len(combos)))
    strategy = resolve_strategy(job.strategy)
    window = Window.of(candles, start, warmup_start, stop)  # one window: the indicator cache keys on its arrays
    interval = bar_interval_ms(candles)

    def score(params: dict[str, Any]) -> Stats:
        return evaluate(strategy, window, params, job.settings, job.cash, interval)

    # Threads share the window and the indicator cache; the engine and indicator kernels release the GIL.
    with memoized_indicators(strategy), ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(score, combos))
    rows = [SweepRow(p, s, _score(s, job.metric)) for p, s in zip(combos, results, strict=True)]
    return sorted(rows, key=lambda r: -r.score if math.isfinite(r.score) else math.inf)


def _score(stats: Stats, metric: str) -> float:
    value = stats.metric(metric)
    return value if not math.isnan(value) else -math.inf


def walk_forward(candles: CandleFrame, job: Job, combos: list[dict[str, Any]], folds: int, *,
                 workers: int | None = None) -> list[Fold]:
    """Optimize on window k, score the winner on window k+1, for every adjacent pair of ``folds`` windows."""
    if folds < 2:
        raise ValueError("walk-forward needs at least 2 windows")
    n = len(candles)
    edges = [n * k // folds for k in range(folds + 1)]
    if edges[1] - edges[0] < 2:
        raise ValueError(f"{n} bars are too few for {folds} walk-forward windows")
    strategy = resolve_strategy(job.strategy)
    out = []
    for k in range(folds - 1):
        lo, mid, hi = edges[k], edges[k + 1], edges[k + 2]
        warm = edges[k - 1] if k > 0 else None
        best = search(candles, job, combos, workers=workers, start=lo, warmup_start=warm, stop=mid)[0]
        oos = evaluate(strategy, Window.of(candles, mid, lo, hi), best.params, job.settings, job.cash,
                       bar_interval_ms(candles))
        t = candles.time
        end_ms = int(t[hi - 1]) + int(bar_interval_ms(candles))
        out.append(Fold(k, (int(t[lo]), int(t[mid])), (int(t[mid]), end_ms), best.params, best.score,
                        _score(oos, job.metric), best.stats, oos))
    return out


def backtest_kwargs(s: EngineSettings) -> dict[str, Any]:
    """The Backtest keyword arguments that reproduce ``s``."""
    return {"fee_bps": s.taker_fee_bps, "maker_fee_bps": s.maker_fee_bps, "slippage_bps": s.slippage_bps,
            "size": s.size, "units": s.units, "long_only": s.long_only, "stop_loss": s.stop_loss,
            "take_profit": s.take_profit, "trailing_stop": s.trailing_stop, "leverage": s.leverage,
            "maint_margin": s.maint_margin}
