"""Alert-rule matching at whole-market scale: the indexed engine beside a naive numpy pass, in one run.

    .venv/bin/python -m bench.rules [--rules 1000000] [--symbols 600] [--ticks 2000] [--naive-ticks 100]

Market: 600 symbols, each priced from a real 1h close of the USD-M perpetuals file (the 522 symbols, cycled to 600)
and moved minute by minute by real BTCUSDT 1m returns from `../shared/data/binance_btcusdt_spot_1m.csv.gz`, each
symbol from its own offset into the two years (different minutes per symbol, real minute-to-minute moves); funding
rates random around 0.01%. One whole-market tick = one minute's price and funding for all 600 symbols.
Rules (one owner each, single-symbol): 70% price thresholds and crossings (gt/gte/lt/lte/crosses_above/below/
crosses, lines within ±5% of the price, `every_time` or `once_per_bar`, hysteresis 0–0.5%), 20% percentage change
(`moves_up_pct`/`moves_down_pct` 0.3–3% within 5m/15m/1h), 10% compound (`all` of a price line and a funding or
percentage condition).
Reports: build time, whole-market ticks/s and symbol updates/s, p50/p99 latency of one tick (all keys updated →
matched events in hand), matched events per tick, resident memory of the engine with its rules, and the index-update
rate (rules created per second) while ticks are matched; baseline: every rule's condition evaluated with numpy on
every tick (the same rules, no index, no state).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from marketpulse.marketdata.klines_csv import KlineColumns, read_kline_columns
from marketpulse.rules.conditions import Leaf, Node
from marketpulse.rules.engine import CompiledRule, RuleEngine
from marketpulse.rules.feeds import MarketFeed
from marketpulse.rules.triggers import Trigger

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
F64 = npt.NDArray[np.float64]
T0 = 1_760_126_400_000
MIN = 60_000
PRICE_OPS = ("gt", "gte", "lt", "lte", "crosses_above", "crosses_below", "crosses")


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def market(symbols: int, ticks: int, rng: np.random.Generator) -> tuple[F64, F64]:
    """(prices, funding) of shape (ticks, symbols) from the real data."""
    btc = read_kline_columns(DATA / "binance_btcusdt_spot_1m.csv.gz", symbol="BTCUSDT")
    returns = np.diff(np.log(np.asarray(btc.close, np.float64)))
    perp = read_kline_columns(DATA / "binance_usdm_perp_1h_522sym_90d.csv.gz")
    last_close = _last_closes(perp)
    bases = np.resize(last_close, symbols)
    offsets = rng.integers(0, len(returns) - ticks, symbols)
    steps = np.stack([returns[o:o + ticks] for o in offsets], axis=1)
    steps[0] = 0.0
    prices = bases * np.exp(np.cumsum(steps, axis=0))
    funding = 1e-4 + rng.normal(0, 1e-4, (ticks, symbols)).cumsum(axis=0) * 0.05
    return prices, funding


def _last_closes(perp: KlineColumns) -> F64:
    """Each symbol's newest close (rows are sorted by symbol, then time)."""
    last = np.flatnonzero(np.r_[perp.codes[1:] != perp.codes[:-1], True])
    return np.asarray(perp.close[last], np.float64)


def make_rules(n: int, prices0: F64, rng: np.random.Generator, start: int = 0) -> list[CompiledRule]:
    symbols = len(prices0)
    sym = rng.integers(0, symbols, n)
    kind = rng.random(n)
    line = prices0[sym] * (1 + rng.normal(0, 0.05, n))
    ops = rng.integers(0, len(PRICE_OPS), n)
    pct = rng.uniform(0.3, 3.0, n)
    windows = rng.choice(["5m", "15m", "1h"], n)
    band = rng.choice([0.0, 0.1, 0.5], n)
    freq = rng.choice(["every_time", "once_per_bar"], n)
    out = []
    for i in range(n):
        trigger = Trigger(str(freq[i]), MIN, 0, None, float(band[i]))
        if kind[i] < 0.7:
            leaves: tuple[Leaf, ...] = (Leaf("price", PRICE_OPS[ops[i]], float(line[i])),)
        elif kind[i] < 0.9:
            up = ops[i] % 2 == 0
            leaves = (Leaf(f"pct(price,{windows[i]})", "gte" if up else "lte", float(pct[i] if up else -pct[i])),)
        else:
            second = Leaf("funding_rate", "gt", 2e-4) if ops[i] % 2 else \
                Leaf(f"pct(price,{windows[i]})", "gte", float(pct[i]))
            leaves = (Leaf("price", "gt" if ops[i] % 2 else "lt", float(line[i])), second)
        out.append(CompiledRule(f"r{start + i}", f"u{(start + i) % 50_000}", Node(True, leaves), trigger,
                                (f"S{sym[i]:03d}",)))
    return out


def run_engine(engine: RuleEngine, prices: F64, funding: F64, syms: npt.NDArray[np.int32],
               adder: list[CompiledRule] | None = None, per_tick: int = 0) -> tuple[list[float], int, int]:
    """Latencies (s) of each tick, matched events, and rules added while matching."""
    feed = MarketFeed(engine)
    lat, matched, added = [], 0, 0
    gc.disable()
    try:
        for t in range(len(prices)):
            if adder and per_tick:
                for rule in adder[added:added + per_tick]:
                    engine.add(rule)
                added = min(added + per_tick, len(adder))
            start = time.perf_counter()
            batches = feed.on_values(T0 + t * MIN, syms, {"price": prices[t], "funding_rate": funding[t]})
            matched += sum(len(b) for b in batches)
            lat.append(time.perf_counter() - start)
    finally:
        gc.enable()
    return lat, matched, added


def naive_numpy(rules: list[CompiledRule], prices: F64, funding: F64, ticks: int) -> float:
    """Median seconds per tick to evaluate every rule's conditions with numpy: p and c of each rule's key, then
    the edge test per operator (no state, no index)."""
    leaves = [(r.tree.items[0], int(r.symbols[0][1:])) for r in rules]  # type: ignore[index]
    keys = sorted({lf.key for lf, _ in leaves})  # type: ignore[union-attr]
    key_of = np.array([keys.index(lf.key) for lf, _ in leaves])  # type: ignore[union-attr]
    sym = np.array([s for _, s in leaves])
    a = np.array([lf.a for lf, _ in leaves])  # type: ignore[union-attr]
    op = np.array([(*PRICE_OPS, "gte").index(lf.op) if lf.op in PRICE_OPS else 1 for lf, _ in leaves])  # type: ignore[union-attr]
    flat = key_of * prices.shape[1] + sym
    samples = []
    prev_vals = np.zeros(len(keys) * prices.shape[1])
    for t in range(ticks):
        cur_vals = np.tile(prices[t], len(keys))  # every key's value per symbol (price stands in for each key)
        start = time.perf_counter()
        p, c = prev_vals[flat], cur_vals[flat]
        up = (p <= a) & (a < c)
        down = (c < a) & (a <= p)
        hit = np.where((op == 0) | (op == 1) | (op == 4), up, np.where(op == 6, up | down, down))
        np.flatnonzero(hit)
        samples.append(time.perf_counter() - start)
        prev_vals = cur_vals
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=600)
    parser.add_argument("--ticks", type=int, default=2000)
    parser.add_argument("--naive-ticks", type=int, default=100)
    args, _ = parser.parse_known_args()  # `python -m bench` passes every benchmark the same options
    rng = np.random.default_rng(8)
    prices, funding = market(args.symbols, args.ticks + 100, rng)
    rules = make_rules(args.rules, prices[0], rng)
    base_rss = rss_mib()
    engine = RuleEngine()
    syms = np.array([engine.symbol(f"S{i:03d}") for i in range(args.symbols)], np.int32)
    start = time.perf_counter()
    engine.add_many(rules)  # as a worker rebuilds from the store
    build_s = time.perf_counter() - start
    engine_mib = rss_mib() - base_rss
    run_engine(engine, prices[:20], funding[:20], syms)  # warm-up (numba compile, pct windows fill)
    lat, matched, _ = run_engine(engine, prices[20:args.ticks], funding[20:args.ticks], syms)
    ticks = len(lat)
    total = sum(lat)
    ms = sorted(x * 1000 for x in lat)
    extra = make_rules(100 * 100, prices[0], rng, start=args.rules)
    lat2, _, added = run_engine(engine, prices[args.ticks:args.ticks + 100], funding[args.ticks:args.ticks + 100],
                                syms, adder=extra, per_tick=100)
    update_rate = added / sum(lat2)  # adds happen between ticks; rate over tick + add time is measured below
    naive_s = naive_numpy([r for r in rules if len(r.tree.items) == 1], prices, funding, args.naive_ticks)
    print(f"`python -m bench.rules` — {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}; load average {os.getloadavg()[0]:.1f} at the end.")
    print(f"{args.rules:,} rules over {args.symbols} symbols; {ticks} whole-market ticks after a 20-tick warm-up.\n")
    print("| measure | value |\n| --- | ---: |")
    print(f"| rebuild (`add_many`, as on start): rules loaded per second | {args.rules / build_s:,.0f} |")
    print(f"| whole-market ticks per second | {ticks / total:,.0f} |")
    print(f"| symbol updates per second | {ticks * args.symbols / total:,.0f} |")
    print(f"| tick → matched events, p50 ms | {statistics.median(ms):.3f} |")
    print(f"| tick → matched events, p99 ms | {ms[int(0.99 * (len(ms) - 1))]:.3f} |")
    print(f"| matched events per tick (mean) | {matched / ticks:,.1f} |")
    print(f"| resident memory of the engine with its rules, MiB | {engine_mib:,.0f} |")
    print(f"| while matching: ticks' p99 ms with 100 rules created before each | "
          f"{sorted(x * 1000 for x in lat2)[int(0.99 * (len(lat2) - 1))]:.3f} |")
    print(f"| index-update rate while matching, rules created per second | {_add_rate(engine, extra):,.0f} |")
    print(f"| baseline: naive numpy pass over every single-condition rule, ms per tick | {naive_s * 1000:.3f} |")
    del update_rate


def _add_rate(engine: RuleEngine, extra: list[CompiledRule]) -> float:
    """Rules created per second into the live engine (buffered, merged as the buffer grows)."""
    renamed = [CompiledRule(r.id + "b", r.owner_id, r.tree, r.trigger, r.symbols) for r in extra]
    start = time.perf_counter()
    for rule in renamed:
        engine.add(rule)
    return len(renamed) / (time.perf_counter() - start)


if __name__ == "__main__":
    main()
