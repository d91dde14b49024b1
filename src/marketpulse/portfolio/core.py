"""The portfolio's pure rules: credentials at rest, exchange records → tax transactions, valuation, categories,
snapshot retention and performance (time- and money-weighted return, drawdown, the BTC benchmark). No I/O.

Exchange records arrive as ccxt's unified structures (trades, deposits/withdrawals, funding incomes) and leave as
`tax.core.Transaction`s, the one vocabulary the tax engine reads:

- a trade against a stablecoin is a `buy`/`sell` of the base asset (the stablecoin side is cash); against any other
  quote (ETH/BTC) it is also the matching `sell`/`buy` of the quote asset at its USD value;
- a fee paid in a stablecoin is the trade's `fee_usd`; a fee paid in another coin (BNB, or the asset bought) is its
  USD value in `fee_usd` and a `fee` disposal of those coins (spending crypto on a fee is a disposal);
- a deposit is a `transfer_in` and a withdrawal a `transfer_out` with the chain's transaction hash as `tx_id`, so the
  engine carries basis across the user's own wallet → exchange moves (an unmatched one is a deposit/withdrawal);
  the withdrawal's network fee is a `fee` disposal of the coin;
- funding received is `income`, funding paid a `fee`.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from marketpulse.tax.core import ZERO, Transaction, TxType

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
YEAR_MS = 365.25 * DAY_MS
FULL_RESOLUTION_MS = 90 * DAY_MS  # snapshots are kept hourly this long, then one a day
STABLECOINS = frozenset({"USD", "USDT", "USDC", "BUSD", "FDUSD", "TUSD", "DAI", "USDP", "PYUSD", "USDE"})
MAJORS = frozenset({"BTC", "ETH"})
CATEGORIES = ("stablecoin", "bitcoin", "ether", "altcoin", "paper")

PriceOf = Callable[[str, int], Decimal | None]  # (asset, epoch ms) → USD per unit, None when unknown


# --- credentials at rest ------------------------------------------------------------------------------------------


class Vault:
    """API keys encrypted with a key derived from a setting (Fernet: AES-128-CBC + HMAC-SHA256, a fresh IV each
    time). The same secret derives the same key, so a restart reads what an earlier process stored."""

    def __init__(self, secret: str) -> None:
        digest = hashlib.sha256(b"marketpulse portfolio credentials\x00" + secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError("the stored credentials were sealed with another key (PULSE_PORTFOLIO_SECRET_KEY "
                             "changed): connect the account again") from None


def mask(secret: str) -> str:
    """What the user sees of a key: its first and last four characters ('abcd…wxyz'), or only dots when short."""
    if len(secret) <= 12:
        return "…" + "•" * 4
    return f"{secret[:4]}…{secret[-4:]}"


# --- exchange records → tax transactions ----------------------------------------------------------------------------


def dec(value: Any) -> Decimal | None:
    """A ccxt number (float, int, str or None) as a Decimal via its shortest text (0.1 stays 0.1)."""
    if value is None:
        return None
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        return None
    if not out.is_finite():
        return None
    out = out.normalize()  # 5000.0 → 5000, so the same amount always reads (and dedupes) alike
    return out.quantize(Decimal(1)) if out.as_tuple().exponent > 0 else out  # type: ignore[operator]


def is_stable(asset: str) -> bool:
    return asset.upper() in STABLECOINS


def split_symbol(symbol: str) -> tuple[str, str]:
    """'BTC/USDT' or 'BTC/USDT:USDT' → ('BTC', 'USDT')."""
    base, _, rest = symbol.partition("/")
    return base, rest.split(":")[0]


def priced_pairs_of_trade(trade: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The (asset, time) prices `trade_transactions` will ask for."""
    base, quote = split_symbol(str(trade["symbol"]))
    ts = int(trade["timestamp"])
    fee = trade.get("fee") or {}
    return [(quote, ts), (base, ts)] + ([(str(fee["currency"]), ts)] if fee.get("currency") else [])


def trade_transactions(record: Mapping[str, Any], account: str, price: PriceOf) -> list[Transaction]:
    trade = record
    base, quote = split_symbol(str(trade["symbol"]))
    ts = int(trade["timestamp"])
    amount = dec(trade.get("amount")) or ZERO
    unit = dec(trade.get("price"))
    if amount <= 0 or unit is None:
        return []
    quote_usd = Decimal(1) if is_stable(quote) else price(quote, ts)
    unit_usd = None if quote_usd is None else unit * quote_usd
    cost = dec(trade.get("cost")) or amount * unit
    tx_id = str(trade.get("id") or trade.get("order") or ts)
    out: list[Transaction] = []
    fee_usd, fee_tx = _fee(trade.get("fee") or {}, ts, account, tx_id, price, {base: unit_usd, quote: quote_usd})
    buy = trade.get("side") == "buy"
    out.append(Transaction(ts, TxType.BUY if buy else TxType.SELL, base, amount, unit_usd, fee_usd, account, tx_id))
    if not is_stable(quote):
        out.append(Transaction(ts, TxType.SELL if buy else TxType.BUY, quote, cost, quote_usd, ZERO, account, tx_id))
    out.extend(fee_tx)
    return out


def _fee(fee: Mapping[str, Any], ts: int, account: str, tx_id: str, price: PriceOf,
         known: Mapping[str, Decimal | None]) -> tuple[Decimal, list[Transaction]]:
    cost = dec(fee.get("cost"))
    currency = str(fee.get("currency") or "")
    if cost is None or cost <= 0 or not currency:
        return ZERO, []
    if is_stable(currency):
        return cost, []
    unit = known[currency] if currency in known else price(currency, ts)
    value = ZERO if unit is None else cost * unit
    return value, [Transaction(ts, TxType.FEE, currency, cost, unit, ZERO, account, f"{tx_id}:fee")]


def transfer_transactions(record: Mapping[str, Any], account: str, price: PriceOf) -> list[Transaction]:
    """A ccxt deposit or withdrawal (status `ok` only) → transfer_in / transfer_out (+ its network fee)."""
    if record.get("status") not in ("ok", None):
        return []
    amount = dec(record.get("amount")) or ZERO
    currency = str(record.get("currency") or "")
    ts = int(record.get("timestamp") or 0)
    if amount <= 0 or not currency or ts <= 0:
        return []
    unit = Decimal(1) if is_stable(currency) else price(currency, ts)
    tx_id = str(record.get("txid") or record.get("id") or ts)
    incoming = record.get("type") == "deposit"
    out = [Transaction(ts, TxType.TRANSFER_IN if incoming else TxType.TRANSFER_OUT, currency, amount, unit, ZERO,
                       account, tx_id)]
    fee = dec((record.get("fee") or {}).get("cost"))
    if not incoming and fee is not None and fee > 0:
        out.append(Transaction(ts, TxType.FEE, currency, fee, unit, ZERO, account, f"{tx_id}:fee"))
    return out


def funding_transactions(record: Mapping[str, Any], account: str, price: PriceOf) -> list[Transaction]:
    """A ccxt funding income: received → income, paid → fee (in the margin asset)."""
    amount = dec(record.get("amount"))
    currency = str(record.get("code") or record.get("currency") or "")
    ts = int(record.get("timestamp") or 0)
    if amount is None or amount == 0 or not currency:
        return []
    unit = Decimal(1) if is_stable(currency) else price(currency, ts)
    tx_id = f"funding:{record.get('id') or ts}"
    kind = TxType.INCOME if amount > 0 else TxType.FEE
    return [Transaction(ts, kind, currency, abs(amount), unit, ZERO, account, tx_id)]


def onchain_transfer(ts: int, asset: str, amount: Decimal, incoming: bool, account: str, tx_id: str,
                     unit: Decimal | None) -> Transaction:
    kind = TxType.TRANSFER_IN if incoming else TxType.TRANSFER_OUT
    return Transaction(ts, kind, asset, amount, Decimal(1) if is_stable(asset) else unit, ZERO, account, tx_id)


FLOW_IN = frozenset({TxType.DEPOSIT, TxType.TRANSFER_IN})
FLOW_OUT = frozenset({TxType.WITHDRAWAL, TxType.TRANSFER_OUT})


def net_flow_usd(transactions: Iterable[Transaction]) -> float:
    """Money moved in minus money moved out (USD at each transaction's price): what performance must not count.
    A move between two connected accounts appears as one out and one in, and cancels."""
    total = ZERO
    for tx in transactions:
        if tx.price_usd is None:
            continue
        if tx.type in FLOW_IN:
            total += tx.amount * tx.price_usd
        elif tx.type in FLOW_OUT:
            total -= tx.amount * tx.price_usd
    return float(total)


# --- valuation -----------------------------------------------------------------------------------------------------


def category(asset: str) -> str:
    asset = asset.upper()
    if is_stable(asset):
        return "stablecoin"
    if asset in ("BTC", "WBTC"):
        return "bitcoin"
    if asset in ("ETH", "WETH", "STETH"):
        return "ether"
    return "altcoin"


@dataclass(frozen=True)
class Holding:
    account_id: str
    asset: str
    amount: Decimal


@dataclass(frozen=True)
class AssetLine:
    asset: str
    amount: Decimal
    price_usd: float | None
    value_usd: float
    category: str
    cost_basis_usd: float | None
    unrealized_pnl_usd: float | None


@dataclass(frozen=True)
class Valuation:
    total_usd: float
    by_asset: list[AssetLine]
    by_account: dict[str, float]
    by_category: dict[str, float]
    unpriced: list[str]
    cost_basis_usd: float
    unrealized_pnl_usd: float


def value(holdings: Sequence[Holding], prices: Mapping[str, Decimal | None],
          basis: Mapping[str, tuple[Decimal, Decimal]], categories: Mapping[str, str] | None = None) -> Valuation:
    """Holdings at `prices` (USD per unit; None = unknown: listed in `unpriced`, valued 0, never guessed).

    `basis` is the tax engine's open lots per asset (amount, basis): an asset's unrealized P&L is its value minus the
    basis of what is held, for the part the lots cover (coins the history doesn't explain carry no basis, so the P&L
    is only over `min(held, in lots)`)."""
    amounts: dict[str, Decimal] = {}
    by_account: dict[str, float] = {}
    for h in holdings:
        amounts[h.asset] = amounts.get(h.asset, ZERO) + h.amount
        unit = prices.get(h.asset)
        by_account[h.account_id] = by_account.get(h.account_id, 0.0) + (float(h.amount * unit) if unit else 0.0)
    lines: list[AssetLine] = []
    by_category: dict[str, float] = {}
    unpriced = []
    total_basis = total_pnl = 0.0
    for asset, amount in amounts.items():
        if amount == 0:
            continue
        unit = prices.get(asset)
        worth = float(amount * unit) if unit is not None else 0.0
        if unit is None:
            unpriced.append(asset)
        cat = (categories or {}).get(asset) or category(asset)
        by_category[cat] = by_category.get(cat, 0.0) + worth
        cost = pnl = None
        lot_amount, lot_basis = basis.get(asset, (ZERO, ZERO))
        if lot_amount > 0 and unit is not None:
            covered = min(amount, lot_amount)
            cost = float(lot_basis * covered / lot_amount)
            pnl = float(covered * unit) - cost
            total_basis += cost
            total_pnl += pnl
        lines.append(AssetLine(asset, amount, None if unit is None else float(unit), worth, cat, cost, pnl))
    lines.sort(key=lambda line: (-line.value_usd, line.asset))
    total = sum(line.value_usd for line in lines)
    return Valuation(total, lines, by_account, by_category, sorted(unpriced), total_basis, total_pnl)


# --- snapshots and performance ---------------------------------------------------------------------------------------


def hour_of(ms: int) -> int:
    return ms - ms % HOUR_MS


def expired_snapshots(times: Iterable[int], now_ms: int) -> list[int]:
    """The snapshot times to delete: older than 90 days, all but the last of each UTC day."""
    cutoff = now_ms - FULL_RESOLUTION_MS
    last_of_day: dict[int, int] = {}
    old = [t for t in times if t < cutoff]
    for t in old:
        day = t // DAY_MS
        last_of_day[day] = max(last_of_day.get(day, t), t)
    keep = set(last_of_day.values())
    return sorted(t for t in old if t not in keep)


@dataclass(frozen=True)
class Point:
    time_ms: int
    value_usd: float
    flow_usd: float  # net money moved in since the previous snapshot (deposits − withdrawals)
    btc_usd: float | None


def bucket(points: Sequence[Point], step_ms: int) -> list[Point]:
    """One point per interval: the last snapshot in it, carrying the sum of the interval's flows."""
    out: list[Point] = []
    flows = 0.0
    for i, p in enumerate(points):
        flows += p.flow_usd
        last = i + 1 == len(points) or points[i + 1].time_ms // step_ms != p.time_ms // step_ms
        if last:
            out.append(Point(p.time_ms, p.value_usd, flows, p.btc_usd))
            flows = 0.0
    return out


@dataclass(frozen=True)
class Performance:
    time_weighted_return: float | None
    money_weighted_return: float | None
    max_drawdown: float | None
    btc_return: float | None
    excess_vs_btc: float | None
    growth: list[float]  # the time-weighted index per point (1.0 at the first): flows don't move it
    benchmark: list[float | None]  # BTC's value of the first point's money, per point


def performance(points: Sequence[Point]) -> Performance:
    """Time-weighted return (each period's flow counted at its end, so deposits are not gains), money-weighted
    return (the IRR of the flows and the end value, over the whole range), max drawdown of the time-weighted index,
    and BTC over the same range."""
    if len(points) < 2:
        first: list[float | None] = [p.value_usd for p in points[:1]]
        return Performance(None, None, None, None, None, [1.0] * len(points), first)
    growth = [1.0]
    index = 1.0
    for prev, cur in zip(points, points[1:], strict=False):
        if prev.value_usd > 0:
            index *= (cur.value_usd - cur.flow_usd) / prev.value_usd
        growth.append(index)
    twr = growth[-1] - 1.0
    peak, drawdown = growth[0], 0.0
    for g in growth:
        peak = max(peak, g)
        if peak > 0:
            drawdown = max(drawdown, (peak - g) / peak)
    start_btc = points[0].btc_usd
    end_btc = points[-1].btc_usd
    btc = (end_btc / start_btc - 1.0) if start_btc and end_btc else None
    benchmark: list[float | None] = [
        (points[0].value_usd * p.btc_usd / start_btc) if start_btc and p.btc_usd else None for p in points]
    mwr = money_weighted(points)
    return Performance(twr, mwr, drawdown, btc, None if btc is None else twr - btc, growth, benchmark)


def money_weighted(points: Sequence[Point]) -> float | None:
    """The rate r over the whole range with V0·(1+r) + Σ F_i·(1+r)^(1−t_i) = V_n (t_i the fraction of the range
    elapsed at each flow): an IRR expressed for the range, found by bisection. None when it has no solution."""
    t0, span = points[0].time_ms, points[-1].time_ms - points[0].time_ms
    if span <= 0:
        return None
    flows = [(0.0, points[0].value_usd)] + [((p.time_ms - t0) / span, p.flow_usd) for p in points[1:] if p.flow_usd]
    end = points[-1].value_usd
    if sum(amount for _, amount in flows) <= 0:
        return None

    def gap(rate: float) -> float:
        return sum(amount * (1.0 + rate) ** (1.0 - t) for t, amount in flows) - end

    lo, hi = -0.9999, 1.0
    while gap(hi) < 0 and hi < 1e6:
        hi *= 2
    if gap(lo) > 0 or gap(hi) < 0:
        return None
    for _ in range(200):
        mid = (lo + hi) / 2
        if gap(mid) < 0:
            lo = mid
        else:
            hi = mid
    out = (lo + hi) / 2
    return out if math.isfinite(out) else None
