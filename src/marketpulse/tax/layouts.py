"""Exchange CSV exports → transactions: the layout is found from the header, each row named by its line.

Layouts (their real column names; a file may carry title lines before the header, as Coinbase's do):

- `generic`: the documented CSV (`csv_formats.GENERIC_COLUMNS`).
- `binance-trades`: Binance's spot trade history, `Date(UTC),Pair,Side,Price,Executed,Amount,Fee` (amounts carry
  their asset: `0.5BTC`, fee in any asset: `0.00075BNB`).
- `binance-history`: Binance's transaction history, `User_ID,UTC_Time,Account,Operation,Coin,Change,Remark`
  (one row per balance change: the rows of one trade share a time and are paired here).
- `coinbase`: Coinbase's transaction history report, `ID,Timestamp,Transaction Type,Asset,Quantity Transacted,
  Price Currency,Price at Transaction,Subtotal,Total (inclusive of fees and/or spread),Fees and/or Spread,Notes`
  (also the older `Spot Price Currency,Spot Price at Transaction` one without `ID`).
- `kraken-ledgers`: `txid,refid,time,type,subtype,aclass,asset,[wallet,]amount,fee,balance` (a trade is two rows
  sharing a refid).
- `kraken-trades`: `txid,ordertxid,pair,time,type,ordertype,price,cost,fee,vol,margin,misc,ledgers` (fee in the
  quote currency).

A trade becomes a `buy` of what was received and a `sell` of what was given (each valued at the trade's USD value
when one side is US dollars or a stablecoin; else left unpriced for the market-data library), plus a `fee` disposal
when the fee was paid in a crypto asset (stablecoins included). The fee's USD value, when the trade tells it, is
the buy's `fee_usd` (added to basis), or the sale's when what came in is cash-like. A fee in a third asset (BNB) is
priced by the library as its own disposal but not added to the trade's basis (a known understatement).
US dollars are cash, not an asset: their legs make no transaction. Other fiat (EUR, …) is not priced here: those
trades' crypto legs are left unpriced. Rows with no tax event (a fiat deposit, a transfer between an exchange's own
sub-accounts) are `ignored`, with a reason; rows that cannot be read are `rejected` with their line and field.
Exports without ids (Binance's) get an id from the row's content and its repeat count in the file, so importing the
same file twice still changes nothing while two identical trades in one file both count.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from marketpulse.tax.core import ZERO, Transaction, TxType
from marketpulse.tax.csv_formats import GENERIC_COLUMNS, ParsedRow, RowError, parse_row
from marketpulse.times import parse_time_ms

USD = "USD"
STABLECOINS = frozenset({"USDT", "USDC", "BUSD", "DAI", "TUSD", "USDP", "FDUSD", "PYUSD", "GUSD", "USDE"})
FIAT = frozenset({"USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF", "TRY", "BRL", "RUB", "UAH", "NGN", "INR", "KRW",
                  "ZAR", "MXN", "PLN", "ARS", "IDR", "VND", "SGD", "HKD", "NZD", "SEK", "NOK", "DKK", "CZK"})
# Binance pairs are written without a separator: the quote is the longest known suffix.
_QUOTES = sorted(STABLECOINS | FIAT | {"BTC", "ETH", "BNB", "XRP", "TRX", "DOGE", "SOL"}, key=len, reverse=True)
_AMOUNT_WITH_ASSET = re.compile(r"^\s*(-?[0-9][0-9,]*(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z0-9]+)\s*$")
_KRAKEN_ASSETS = {"XXBT": "BTC", "XBT": "BTC", "XXDG": "DOGE", "XDG": "DOGE", "XETH": "ETH", "XXRP": "XRP",
                  "XLTC": "LTC", "XXLM": "XLM", "XETC": "ETC", "XZEC": "ZEC", "XXMR": "XMR", "XREP": "REP",
                  "XMLN": "MLN", "ZUSD": "USD", "ZEUR": "EUR", "ZGBP": "GBP", "ZCAD": "CAD", "ZJPY": "JPY",
                  "ZAUD": "AUD", "ZCHF": "CHF"}


@dataclass(frozen=True, slots=True)
class Ignored:
    line: int
    reason: str


@dataclass(slots=True)
class Decoded:
    """A file read leniently: transactions (price may still be missing), rejected and ignored rows."""

    layout: str
    rows_read: int = 0
    rows: list[ParsedRow] = field(default_factory=list)
    rejected: list[RowError] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)


Row = tuple[int, dict[str, str]]


def decode(text: str, account: str | None = None) -> Decoded:
    """Every row of `text` in whichever layout its header is (RowError on line 1 when none fits).
    `account` names where the exchange layouts' rows are held (default: the exchange's name)."""
    lines = text.lstrip("\ufeff").splitlines()
    for index, line in enumerate(lines[:12]):
        header = [name.strip().strip('"').strip() for name in next(csv.reader([line]), [])]
        for layout in LAYOUTS:
            if layout.matches(header):
                rows = list(_rows(lines, index, header))
                out = Decoded(layout.name, rows_read=len(rows))
                layout.read(rows, account or layout.account, out)
                out.rows.sort(key=lambda parsed: parsed.line)
                out.rejected.sort(key=lambda error: error.line)
                return out
    raise RowError(1, "file", "header not recognised: expected the generic CSV's columns "
                   f"({', '.join(GENERIC_COLUMNS)}) or a Binance, Coinbase or Kraken export's header")


def _rows(lines: list[str], header_index: int, header: list[str]) -> Iterator[Row]:
    reader = csv.reader(lines[header_index + 1:])
    for offset, values in enumerate(reader):
        if not any(value.strip() for value in values):
            continue
        row = {name: (values[i].strip() if i < len(values) else "") for i, name in enumerate(header)}
        yield header_index + 2 + offset, row  # lines count from 1; the header is line header_index + 1


@dataclass(frozen=True)
class Layout:
    name: str
    account: str
    required: tuple[str, ...]
    read: Callable[[list[Row], str, Decoded], None]

    def matches(self, header: list[str]) -> bool:
        return all(name in header for name in self.required)


# ---- shared pieces -------------------------------------------------------------------------------------------------


def _number(text: str, line: int, column: str) -> Decimal:
    cleaned = text.replace("$", "").replace(",", "").strip()
    if cleaned.startswith("-$"):
        cleaned = "-" + cleaned[2:]
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise RowError(line, column, f"{text[:40]!r} is not a number") from None
    if not value.is_finite():
        raise RowError(line, column, f"{text[:40]!r} is not a finite number")
    return value


def _optional(text: str, line: int, column: str) -> Decimal | None:
    return None if text.replace("$", "").strip() == "" else _number(text, line, column)


def _time(text: str, line: int, column: str) -> int:
    cleaned = text.strip().removesuffix(" UTC").removesuffix("UTC").strip()
    try:
        return parse_time_ms(cleaned)
    except ValueError as exc:
        raise RowError(line, column, str(exc)) from None


def _amount_with_asset(text: str, line: int, column: str) -> tuple[Decimal, str]:
    match = _AMOUNT_WITH_ASSET.match(text)
    if match is None:
        raise RowError(line, column, f"{text[:40]!r} is not an amount followed by its asset (e.g. 0.5BTC)")
    return _number(match.group(1), line, column).copy_abs(), match.group(2).upper()


def _split_pair(pair: str, line: int, column: str) -> tuple[str, str]:
    pair = pair.upper().replace("/", "").replace("-", "").replace("_", "")
    for quote in _QUOTES:
        if pair.endswith(quote) and len(pair) > len(quote):
            return pair[: -len(quote)], quote
    raise RowError(line, column, f"{pair!r}: no known quote currency at its end")


def _content_ids(prefix: str, rows: list[Row]) -> dict[int, str]:
    """An id per row from its content and how often that content came before (see the module docstring)."""
    seen: dict[str, int] = defaultdict(int)
    ids = {}
    for line, row in rows:
        content = "\x1f".join(f"{k}={v}" for k, v in sorted(row.items()))
        seen[content] += 1
        digest = hashlib.sha256(f"{content}\x1e{seen[content]}".encode()).hexdigest()[:20]
        ids[line] = f"{prefix}:{digest}"
    return ids


def _usd_value(asset: str, amount: Decimal) -> Decimal | None:
    """The USD value of an amount of a cash-like asset (USD or a stablecoin at 1), None for anything else."""
    return amount if asset == USD or asset in STABLECOINS else None


@dataclass(frozen=True, slots=True)
class Trade:
    at_ms: int
    account: str
    tx_id: str
    got: str
    got_amount: Decimal
    gave: str
    gave_amount: Decimal
    fee_asset: str = ""
    fee_amount: Decimal = ZERO
    value_usd: Decimal | None = None  # when the export states it (Coinbase); else from a USD/stablecoin side


def trade_transactions(trade: Trade) -> list[Transaction]:
    """A buy of what came in, a sell of what went out (neither for US dollars), and a fee disposal for a fee paid in
    a crypto asset. The fee's USD value (when known here) is added to the basis of what was bought, or taken from
    the proceeds of what was sold when what came in is cash-like."""
    value = trade.value_usd
    if value is None:
        value = _usd_value(trade.gave, trade.gave_amount)
    if value is None:
        value = _usd_value(trade.got, trade.got_amount)
    fee_price = None
    if trade.fee_amount > 0:
        fee_price = (Decimal(1) if trade.fee_asset == USD or trade.fee_asset in STABLECOINS
                     else _unit(value, trade.got_amount) if trade.fee_asset == trade.got
                     else _unit(value, trade.gave_amount) if trade.fee_asset == trade.gave else None)
    fee_usd = ZERO if fee_price is None else trade.fee_amount * fee_price
    fee_on_buy = trade.got not in FIAT and trade.got not in STABLECOINS or trade.gave in FIAT
    out: list[Transaction] = []
    if trade.got not in FIAT and trade.got_amount > 0:
        out.append(Transaction(trade.at_ms, TxType.BUY, trade.got, trade.got_amount, _unit(value, trade.got_amount),
                               fee_usd if fee_on_buy else ZERO, trade.account, f"{trade.tx_id}:in"))
    if trade.gave not in FIAT and trade.gave_amount > 0:
        out.append(Transaction(trade.at_ms, TxType.SELL, trade.gave, trade.gave_amount,
                               _unit(value, trade.gave_amount), ZERO if fee_on_buy else fee_usd, trade.account,
                               f"{trade.tx_id}:out"))
    if trade.fee_amount > 0 and trade.fee_asset not in FIAT:
        out.append(Transaction(trade.at_ms, TxType.FEE, trade.fee_asset, trade.fee_amount, fee_price, ZERO,
                               trade.account, f"{trade.tx_id}:fee"))
    return out


def _unit(value: Decimal | None, amount: Decimal) -> Decimal | None:
    return None if value is None or amount == 0 else value / amount


def _single(line: int, kind: TxType, asset: str, amount: Decimal, price: Decimal | None, fee_usd: Decimal,
            account: str, tx_id: str, at_ms: int) -> ParsedRow:
    return ParsedRow(line, Transaction(at_ms, kind, asset, amount, price, fee_usd, account, tx_id))


# ---- generic -------------------------------------------------------------------------------------------------------


def _read_generic(rows: list[Row], _account: str, out: Decoded) -> None:
    for line, row in rows:
        try:
            out.rows.append(ParsedRow(line, parse_row({k: row.get(k, "") for k in GENERIC_COLUMNS}, line)))
        except RowError as exc:
            out.rejected.append(exc)


# ---- Binance -------------------------------------------------------------------------------------------------------


def _read_binance_trades(rows: list[Row], account: str, out: Decoded) -> None:
    ids = _content_ids("binance", rows)
    for line, row in rows:
        try:
            at = _time(row["Date(UTC)"], line, "Date(UTC)")
            base, quote = _split_pair(row["Pair"], line, "Pair")
            side = row["Side"].upper()
            if side not in ("BUY", "SELL"):
                raise RowError(line, "Side", f"{row['Side']!r} is not BUY or SELL")
            executed, executed_asset = _amount_with_asset(row["Executed"], line, "Executed")
            total, total_asset = _amount_with_asset(row["Amount"], line, "Amount")
            fee, fee_asset = (_amount_with_asset(row["Fee"], line, "Fee") if row.get("Fee") else (ZERO, ""))
            base, quote = executed_asset or base, total_asset or quote
            if side == "BUY":
                trade = Trade(at, account, ids[line], base, executed, quote, total, fee_asset, fee)
            else:
                trade = Trade(at, account, ids[line], quote, total, base, executed, fee_asset, fee)
            out.rows.extend(ParsedRow(line, tx) for tx in trade_transactions(trade))
        except RowError as exc:
            out.rejected.append(exc)


_BINANCE_TRADE_LEGS = {"Transaction Buy": "got", "Transaction Revenue": "got", "Buy": "got",
                       "Transaction Spend": "gave", "Transaction Sold": "gave", "Sell": "gave",
                       "Transaction Fee": "fee", "Fee": "fee", "Binance Convert": "convert",
                       "Small Assets Exchange BNB": "convert", "Buy Crypto With Fiat": "convert",
                       "Large OTC Trading": "convert", "Asset Conversion Transfer": "convert"}
_BINANCE_INCOME = ("Distribution", "Staking Rewards", "Simple Earn Flexible Interest", "Simple Earn Locked Rewards",
                   "Airdrop Assets", "Launchpool Interest", "Savings Interest", "ETH 2.0 Staking Rewards",
                   "POS savings interest", "Cashback Voucher", "Commission Rebate", "Referral Kickback",
                   "Crypto Box", "Mission Reward Distribution", "BNB Vault Rewards", "Referral Commission",
                   "Simple Earn Flexible Airdrop")
_BINANCE_INTERNAL = ("Transfer Between Main and Funding Wallet", "Transfer Between Spot Account and UM Futures Account",
                     "Simple Earn Flexible Subscription", "Simple Earn Flexible Redemption", "Staking Purchase",
                     "Staking Redemption", "Savings purchase", "Savings Principal redemption", "transfer_in",
                     "transfer_out", "Main and Funding Account Transfer", "Launchpool Subscription/Redemption",
                     "Simple Earn Locked Subscription", "Simple Earn Locked Redemption")


def _read_binance_transactions(rows: list[Row], account: str, out: Decoded) -> None:
    # Trade legs at the same time and sub-account are one trade: what came in, what went out, and the fee.
    groups: dict[tuple[str, str], list[tuple[int, str, str, Decimal]]] = defaultdict(list)
    ids = _content_ids("binance", rows)
    for line, row in rows:
        try:
            at_text, operation, coin = row["UTC_Time"], row["Operation"].strip(), row["Coin"].strip().upper()
            at = _time(at_text, line, "UTC_Time")
            change = _number(row["Change"], line, "Change")
            if not coin:
                raise RowError(line, "Coin", "required")
            leg = _BINANCE_TRADE_LEGS.get(operation)
            if leg is not None:
                groups[(at_text, row.get("Account", ""))].append((line, leg, coin, change))
                continue
            if operation in _BINANCE_INTERNAL:
                out.ignored.append(Ignored(line, f"{operation}: a move between Binance's own accounts"))
            elif coin in FIAT:
                out.ignored.append(Ignored(line, f"{operation} of {coin}: cash, not an asset"))
            elif change == 0:
                out.ignored.append(Ignored(line, "a change of 0"))
            elif operation in ("Deposit", "Withdraw", "Withdrawal"):
                kind = TxType.TRANSFER_IN if change > 0 else TxType.TRANSFER_OUT
                out.rows.append(_single(line, kind, coin, change.copy_abs(), None, ZERO, account, ids[line], at))
            elif operation in _BINANCE_INCOME or "Interest" in operation or "Reward" in operation:
                if change < 0:
                    raise RowError(line, "Change", f"{operation} with a negative change")
                out.rows.append(_single(line, TxType.INCOME, coin, change, None, ZERO, account, ids[line], at))
            else:
                raise RowError(line, "Operation", f"{operation!r} is not an operation this import knows")
        except RowError as exc:
            out.rejected.append(exc)
    for (at_text, _sub), legs in groups.items():
        _binance_group(at_text, legs, account, ids, out)


def _binance_group(at_text: str, legs: list[tuple[int, str, str, Decimal]], account: str, ids: dict[int, str],
                   out: Decoded) -> None:
    line = legs[0][0]
    at = _time(at_text, line, "UTC_Time")
    got = [(coin, change) for _l, leg, coin, change in legs if leg in ("got", "convert") and change > 0]
    gave = [(coin, -change) for _l, leg, coin, change in legs if leg in ("gave", "convert") and change < 0]
    fees = [(coin, -change) for _l, leg, coin, change in legs if leg == "fee"]
    got_totals = _sum_by_asset(got)
    gave_totals = _sum_by_asset(gave)
    fee_totals = _sum_by_asset(fees)
    if len(got_totals) != 1 or len(gave_totals) != 1 or len(fee_totals) > 1:
        lines = ", ".join(str(leg[0]) for leg in legs)
        error = RowError(line, "Operation", f"the trade rows at {at_text} (lines {lines}) don't pair into one asset "
                         "received for one asset given")
        out.rejected.append(error)
        return
    (got_coin, got_amount), = got_totals.items()
    (gave_coin, gave_amount), = gave_totals.items()
    fee_coin, fee_amount = next(iter(fee_totals.items()), ("", ZERO))
    trade = Trade(at, account, ids[line], got_coin, got_amount, gave_coin, gave_amount, fee_coin, fee_amount)
    out.rows.extend(ParsedRow(line, tx) for tx in trade_transactions(trade))


def _sum_by_asset(items: list[tuple[str, Decimal]]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for coin, amount in items:
        totals[coin] = totals.get(coin, ZERO) + amount
    return totals


# ---- Coinbase ------------------------------------------------------------------------------------------------------

_COINBASE_INCOME = ("Rewards Income", "Staking Income", "Learning Reward", "Coinbase Earn", "Inflation Reward",
                    "Incentives Rewards Payout", "Interest", "Reward Income", "Airdrop")
_CONVERTED = re.compile(r"Converted\s+([0-9.,]+)\s+(\w+)\s+to\s+([0-9.,]+)\s+(\w+)", re.IGNORECASE)


def _read_coinbase(rows: list[Row], account: str, out: Decoded) -> None:
    ids = _content_ids("coinbase", rows)
    for line, row in rows:
        try:
            _coinbase_row(line, row, account, ids[line], out)
        except RowError as exc:
            out.rejected.append(exc)


def _coinbase_row(line: int, row: dict[str, str], account: str, content_id: str, out: Decoded) -> None:
    price_column = "Price at Transaction" if "Price at Transaction" in row else "Spot Price at Transaction"
    currency_column = "Price Currency" if "Price Currency" in row else "Spot Price Currency"
    fee_column = "Fees and/or Spread" if "Fees and/or Spread" in row else "Fees"
    at = _time(row["Timestamp"], line, "Timestamp")
    kind_text = row["Transaction Type"].strip()
    asset = row["Asset"].strip().upper()
    if not asset:
        raise RowError(line, "Asset", "required")
    quantity = _number(row["Quantity Transacted"], line, "Quantity Transacted").copy_abs()
    in_usd = row.get(currency_column, "USD").strip().upper() in ("USD", "")
    price = _optional(row.get(price_column, ""), line, price_column) if in_usd else None
    fee = (_optional(row.get(fee_column, ""), line, fee_column) or ZERO).copy_abs() if in_usd else ZERO
    tx_id = row.get("ID") or content_id
    kind = kind_text.lower()
    if asset in FIAT:
        out.ignored.append(Ignored(line, f"{kind_text} of {asset}: cash, not an asset"))
        return
    if quantity == 0:
        out.ignored.append(Ignored(line, "a quantity of 0"))
        return
    if kind in ("buy", "advanced trade buy", "advance trade buy"):
        out.rows.append(_single(line, TxType.BUY, asset, quantity, price, fee, account, tx_id, at))
    elif kind in ("sell", "advanced trade sell", "advance trade sell"):
        out.rows.append(_single(line, TxType.SELL, asset, quantity, price, fee, account, tx_id, at))
    elif kind in ("send", "withdrawal", "withdraw"):
        out.rows.append(_single(line, TxType.TRANSFER_OUT, asset, quantity, None, ZERO, account, tx_id, at))
    elif kind in ("receive", "deposit"):  # the coins' cost is not Coinbase's price that day: basis unknown
        out.rows.append(_single(line, TxType.TRANSFER_IN, asset, quantity, None, ZERO, account, tx_id, at))
    elif kind_text in _COINBASE_INCOME or "reward" in kind or "income" in kind:
        out.rows.append(_single(line, TxType.INCOME, asset, quantity, price, ZERO, account, tx_id, at))
    elif kind == "convert":
        match = _CONVERTED.search(row.get("Notes", ""))
        if match is None:
            raise RowError(line, "Notes", "a Convert row's notes should read 'Converted X A to Y B'")
        got_amount = _number(match.group(3), line, "Notes")
        got = match.group(4).upper()
        subtotal = _optional(row.get("Subtotal", ""), line, "Subtotal") if in_usd else None
        value = subtotal.copy_abs() if subtotal is not None else (quantity * price if price is not None else None)
        trade = Trade(at, account, tx_id, got, got_amount, asset, quantity, USD if fee else "", fee, value)
        out.rows.extend(ParsedRow(line, tx) for tx in trade_transactions(trade))
    else:
        raise RowError(line, "Transaction Type", f"{kind_text!r} is not a type this import knows")


# ---- Kraken --------------------------------------------------------------------------------------------------------


def kraken_asset(code: str) -> str:
    code = code.strip().upper().split(".")[0]  # staking variants: DOT.S, ETH2.S, USD.HOLD
    if code in _KRAKEN_ASSETS:
        return _KRAKEN_ASSETS[code]
    if code == "ETH2":
        return "ETH"
    return code


def _read_kraken_ledgers(rows: list[Row], account: str, out: Decoded) -> None:
    trades: dict[str, list[tuple[int, str, Decimal, Decimal]]] = defaultdict(list)
    times: dict[str, int] = {}
    for line, row in rows:
        try:
            kind = row["type"].strip().lower()
            asset = kraken_asset(row["asset"])
            amount = _number(row["amount"], line, "amount")
            fee = _optional(row.get("fee", ""), line, "fee") or ZERO
            at = _time(row["time"], line, "time")
            tx_id = row.get("txid") or row["refid"]
            if not row.get("txid"):
                out.ignored.append(Ignored(line, "no txid: Kraken's pending copy of a later row"))
            elif kind in ("trade", "spend", "receive", "margin trade"):
                trades[row["refid"]].append((line, asset, amount, fee))
                times.setdefault(row["refid"], at)
            elif asset in FIAT:
                out.ignored.append(Ignored(line, f"{kind} of {asset}: cash, not an asset"))
            elif kind in ("transfer", "earn", "staking") and row.get("subtype", "") in (
                    "spottostaking", "stakingfromspot", "stakingtospot", "spotfromstaking", "spotfromfutures",
                    "spottofutures", "allocation", "deallocation", "migration"):
                out.ignored.append(Ignored(line, f"{kind}/{row['subtype']}: a move between Kraken's own accounts"))
            elif kind in ("deposit", "withdrawal"):
                direction = TxType.TRANSFER_IN if amount > 0 else TxType.TRANSFER_OUT
                fee_row = [] if fee == 0 else [ParsedRow(line, Transaction(at, TxType.FEE, asset, fee, None, ZERO,
                                                                           account, f"{tx_id}:fee"))]
                out.rows.append(_single(line, direction, asset, amount.copy_abs(), None, ZERO, account, tx_id, at))
                out.rows.extend(fee_row)
            elif kind in ("staking", "earn", "reward", "dividend", "airdrop") and amount > 0:
                out.rows.append(_single(line, TxType.INCOME, asset, amount, None, ZERO, account, tx_id, at))
            elif amount == 0:
                out.ignored.append(Ignored(line, f"{kind}: a change of 0"))
            else:
                raise RowError(line, "type", f"{kind!r} is not a ledger type this import knows")
        except RowError as exc:
            out.rejected.append(exc)
    for refid, legs in trades.items():
        line = legs[0][0]
        got = [(asset, amount) for _l, asset, amount, _f in legs if amount > 0]
        gave = [(asset, -amount) for _l, asset, amount, _f in legs if amount < 0]
        fees = [(asset, fee) for _l, asset, _a, fee in legs if fee > 0]
        got_totals, gave_totals, fee_totals = _sum_by_asset(got), _sum_by_asset(gave), _sum_by_asset(fees)
        if len(got_totals) != 1 or len(gave_totals) != 1 or len(fee_totals) > 1:
            out.rejected.append(RowError(line, "refid", f"the trade rows of {refid} don't pair into one asset "
                                         "received for one asset given"))
            continue
        (got_asset, got_amount), = got_totals.items()
        (gave_asset, gave_amount), = gave_totals.items()
        fee_asset, fee_amount = next(iter(fee_totals.items()), ("", ZERO))
        # A ledger's fee is taken on top of the row's amount: a fee on the received side is received then spent.
        trade = Trade(times[refid], account, refid, got_asset, got_amount, gave_asset, gave_amount, fee_asset,
                      fee_amount)
        out.rows.extend(ParsedRow(line, tx) for tx in trade_transactions(trade))


def _read_kraken_trades(rows: list[Row], account: str, out: Decoded) -> None:
    for line, row in rows:
        try:
            at = _time(row["time"], line, "time")
            pair = row["pair"].strip().upper()
            base, quote = _kraken_pair(pair, line)
            side = row["type"].strip().lower()
            vol = _number(row["vol"], line, "vol").copy_abs()
            cost = _number(row["cost"], line, "cost").copy_abs()
            fee = (_optional(row.get("fee", ""), line, "fee") or ZERO).copy_abs()
            tx_id = row["txid"]
            if side == "buy":
                trade = Trade(at, account, tx_id, base, vol, quote, cost, quote, fee)
            elif side == "sell":
                trade = Trade(at, account, tx_id, quote, cost, base, vol, quote, fee)
            else:
                raise RowError(line, "type", f"{row['type']!r} is not buy or sell")
            out.rows.extend(ParsedRow(line, tx) for tx in trade_transactions(trade))
        except RowError as exc:
            out.rejected.append(exc)


def _kraken_pair(pair: str, line: int) -> tuple[str, str]:
    if "/" in pair:
        base, quote = pair.split("/", 1)
        return kraken_asset(base), kraken_asset(quote)
    if len(pair) == 8 and pair[0] in "XZ" and pair[4] in "XZ":
        return kraken_asset(pair[:4]), kraken_asset(pair[4:])
    for quote_code in sorted(_KRAKEN_ASSETS, key=len, reverse=True):
        if pair.endswith(quote_code) and len(pair) > len(quote_code):
            return kraken_asset(pair[: -len(quote_code)]), kraken_asset(quote_code)
    base, quote = _split_pair(pair, line, "pair")
    return kraken_asset(base), kraken_asset(quote)


LAYOUTS = (
    Layout("generic", "default", GENERIC_COLUMNS, _read_generic),
    Layout("binance-trades", "binance", ("Date(UTC)", "Pair", "Side", "Price", "Executed", "Amount"),
           _read_binance_trades),
    Layout("binance-history", "binance", ("UTC_Time", "Account", "Operation", "Coin", "Change"),
           _read_binance_transactions),
    Layout("coinbase", "coinbase", ("Timestamp", "Transaction Type", "Asset", "Quantity Transacted"), _read_coinbase),
    Layout("kraken-ledgers", "kraken", ("txid", "refid", "time", "type", "asset", "amount", "fee"),
           _read_kraken_ledgers),
    Layout("kraken-trades", "kraken", ("txid", "ordertxid", "pair", "time", "type", "price", "cost", "fee", "vol"),
           _read_kraken_trades),
)
