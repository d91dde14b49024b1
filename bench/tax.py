"""The tax engine on a year of 1,000,000 transactions across 50 assets and 10 accounts, beside a naive list FIFO.

    .venv/bin/python -m bench.tax [--transactions 1000000] [--seed 7]

History (seeded, one year from 2024-01-01, times ascending, Decimal amounts with 8 places and prices with 2):
45% buys, 33% sells, 5% income, 2% fees paid in the asset, 15% transfers between own accounts (a transfer_out and
its transfer_in a minute later, same tx_id, 0.1% less received). Each asset has its own random-walk price.
Each engine runs in a fresh child process that builds the same history first; reported: seconds for
`lots.compute` (ordering included, generation not), the process's peak resident memory, and that peak minus the
resident memory after generation (what the engine added). Baseline in the same run: a naive FIFO, one Python list
of [amount, basis] lots per asset, `list.pop(0)` when a lot is used up, transfers ignored (pooled lots don't move),
on the same Decimal rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
from decimal import Decimal

from marketpulse.tax.core import Method, Transaction, TxType
from marketpulse.tax.lots import compute

T0 = 1_704_067_200_000  # 2024-01-01 UTC
YEAR_MS = 366 * 86_400_000
ASSETS = [f"A{i:02d}" for i in range(50)]
ACCOUNTS = [f"acct{i}" for i in range(10)]
ENGINES = ("fifo", "lifo", "hifo", "lofo", "fifo-per-wallet", "naive-fifo")


def history(n: int, seed: int) -> list[Transaction]:
    rng = random.Random(seed)
    prices = {a: rng.uniform(1, 50_000) for a in ASSETS}
    step = YEAR_MS // n
    out: list[Transaction] = []
    i = 0
    while len(out) < n:
        at = T0 + i * step
        i += 1
        asset, account = rng.choice(ASSETS), rng.choice(ACCOUNTS)
        prices[asset] *= 1 + rng.gauss(0, 0.002)
        price = Decimal(f"{prices[asset]:.2f}")
        amount = Decimal(f"{rng.uniform(0.001, 2):.8f}")
        roll = rng.random()
        if roll < 0.45:
            out.append(Transaction(at, TxType.BUY, asset, amount, price, Decimal("1.25"), account, f"b{i}"))
        elif roll < 0.78:
            out.append(Transaction(at, TxType.SELL, asset, amount, price, Decimal("1.25"), account, f"s{i}"))
        elif roll < 0.83:
            out.append(Transaction(at, TxType.INCOME, asset, amount / 100, price, Decimal(0), account, f"i{i}"))
        elif roll < 0.85:
            out.append(Transaction(at, TxType.FEE, asset, amount / 1000, price, Decimal(0), account, f"f{i}"))
        else:
            to = rng.choice([a for a in ACCOUNTS if a != account])
            out.append(Transaction(at, TxType.TRANSFER_OUT, asset, amount, None, Decimal(0), account, f"t{i}"))
            out.append(Transaction(at + 60_000, TxType.TRANSFER_IN, asset, amount * Decimal("0.999"), None,
                                   Decimal(0), to, f"t{i}"))
    return out[:n]


def naive_fifo(rows: list[Transaction]) -> tuple[int, Decimal]:
    """The baseline: lists of [amount, basis] per asset, consumed from the front. (disposals, Σ gains)."""
    lots: dict[str, list[list[Decimal]]] = {}
    disposals, gains = 0, Decimal(0)
    for tx in sorted(rows, key=lambda t: t.timestamp_ms):
        price = tx.price_usd or Decimal(0)
        if tx.type in (TxType.BUY, TxType.INCOME):
            fee = tx.fee_usd if tx.type is TxType.BUY else Decimal(0)
            lots.setdefault(tx.asset, []).append([tx.amount, tx.amount * price + fee])
        elif tx.type in (TxType.SELL, TxType.FEE):
            queue, wanted, basis = lots.setdefault(tx.asset, []), tx.amount, Decimal(0)
            while wanted > 0 and queue:
                lot = queue[0]
                if lot[0] <= wanted:
                    wanted -= lot[0]
                    basis += lot[1]
                    queue.pop(0)
                else:
                    used = lot[1] * wanted / lot[0]
                    lot[0] -= wanted
                    lot[1] -= used
                    basis += used
                    wanted = Decimal(0)
            disposals += 1
            gains += tx.amount * price - tx.fee_usd - basis
    return disposals, gains


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_one(engine: str, n: int, seed: int) -> dict[str, object]:
    rows = history(n, seed)
    before = rss_mib()
    started = time.perf_counter()
    if engine == "naive-fifo":
        disposals, gains = naive_fifo(rows)
    else:
        method = Method(engine.split("-")[0])
        result = compute(rows, method, per_wallet=engine.endswith("per-wallet"))
        disposals, gains = len(result.disposals), sum((d.gain for d in result.disposals), Decimal(0))
    seconds = time.perf_counter() - started
    peak = rss_mib()
    return {"engine": engine, "seconds": seconds, "peak_mib": peak, "engine_mib": peak - before,
            "disposals": disposals, "gains": str(round(gains, 2))}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--one", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.transactions, args.seed)))
        return 0
    print(f"{args.transactions:,} transactions, {len(ASSETS)} assets, {len(ACCOUNTS)} accounts; "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, load {os.getloadavg()[0]:.1f} at start\n")
    print("| engine | seconds | peak RSS MiB | added by the engine MiB | disposals | Σ gains USD |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for engine in ENGINES:
        out = subprocess.run([sys.executable, "-m", "bench.tax", "--one", engine, "--transactions",
                              str(args.transactions), "--seed", str(args.seed)], capture_output=True, text=True,
                             check=True)
        r = json.loads(out.stdout)
        print(f"| {r['engine']} | {r['seconds']:.2f} | {r['peak_mib']:.0f} | {r['engine_mib']:.0f} | "
              f"{r['disposals']:,} | {r['gains']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
