"""Portfolio in the database: connected accounts (keys sealed), syncs, the current view, hourly snapshots, history.

Every method takes the owner and filters by it: another user's account id is simply not found. A sync runs as a
background task per account (one at a time per account); each page of history is stored with its cursor in one
transaction, so a sync that fails half-way resumes where it stopped. Synced transactions go into the tax lane's
`tax_transactions` (account = the connection's name, deduplicated by the tax key), so tax reports use them.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.clock import Clock
from marketpulse.portfolio import core
from marketpulse.portfolio.core import Holding, Point, Vault
from marketpulse.portfolio.prices import Prices
from marketpulse.portfolio.tables import PortfolioAccountRow, PortfolioHoldingRow, PortfolioSnapshotRow
from marketpulse.settings import Settings
from marketpulse.tax.core import Method, Transaction, TxType, dedupe_key
from marketpulse.tax.lots import open_lots
from marketpulse.tax.tables import TaxTransactionRow
from marketpulse.trading.paper.tables import PaperAccountRow, PaperFillRow, PaperPositionRow

log = structlog.get_logger(__name__)

KINDS = ("exchange", "evm", "solana", "paper")
PAPER_ASSET = "PAPER-USD"  # paper equity: counted apart (category `paper`), never mistaken for real dollars
EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
SOLANA_ADDRESS = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,44}$")
HISTORY_START_MS = 1_230_768_000_000  # 2009-01-01: an exchange's history is read from here on a first sync
SNAPSHOT_CHECK_MS = 300_000  # the snapshot duty looks this often; each market hour is stored once
SYNC_EVERY_MS = 3_600_000  # the duty syncs an account again when its last sync is older than this


class Invalid(ValueError):
    """Bad input, naming the field (a 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


class Unavailable(RuntimeError):
    """The exchange or node could not be asked (a 503)."""


@dataclass(frozen=True)
class Connect:
    kind: str
    name: str
    exchange: str | None = None
    api_key: str | None = None
    secret: str | None = None
    chain: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class View:
    as_of_ms: int
    valuation: core.Valuation
    accounts: list[PortfolioAccountRow]


@dataclass(frozen=True)
class History:
    points: list[Point]
    performance: core.Performance


class PortfolioService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings,
                 market_clock: Clock | None = None, library: Any = None) -> None:
        self.sessions, self.clock, self.settings = sessions, clock, settings
        self.library = library  # the candle library's prices (tax.prices.LibraryPrices) for older history
        self.market_clock = market_clock or clock  # prices and snapshots follow the market's time (a replay's)
        secret = settings.portfolio_secret_key or settings.jwt_secret_key
        self.vault = Vault(secret.get_secret_value())
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.dev_exchange: Any = None  # `pulse demo`'s fake exchange, stopped with this service
        self.demo_hint: Any = None  # what the demo's /portfolio page offers to connect

    # ---- accounts -------------------------------------------------------------------------------------------------

    async def connect(self, owner: str, spec: Connect) -> PortfolioAccountRow:
        """Check and store a connection (Invalid naming the field; Unavailable when the exchange can't be asked),
        then start its first sync."""
        row = PortfolioAccountRow(id=str(uuid.uuid4()), owner_id=owner, kind=spec.kind, name=spec.name.strip(),
                                  status="pending", cursors={}, transactions=0, created_at_ms=self.clock.now_ms())
        if not row.name:
            raise Invalid("name", "a name is required")
        if spec.kind == "exchange":
            await self._check_exchange(spec)
            assert spec.api_key and spec.secret and spec.exchange
            row.exchange = spec.exchange
            row.api_key_sealed, row.secret_sealed = self.vault.seal(spec.api_key), self.vault.seal(spec.secret)
            row.key_hint = core.mask(spec.api_key)
        elif spec.kind == "evm":
            if spec.chain not in self.settings.portfolio_evm_chains:
                known = ", ".join(self.settings.portfolio_evm_chains) or "none configured"
                raise Invalid("chain", f"unknown chain {spec.chain!r} (configured: {known})")
            if not spec.address or not EVM_ADDRESS.match(spec.address):
                raise Invalid("address", "an EVM address is 0x and 40 hex digits")
            row.chain, row.address = spec.chain, spec.address.lower()
        elif spec.kind == "solana":
            if not self.settings.portfolio_solana_rpc_url:
                raise Invalid("kind", "Solana wallets are not enabled here (PULSE_PORTFOLIO_SOLANA_RPC_URL)")
            if not spec.address or not SOLANA_ADDRESS.match(spec.address):
                raise Invalid("address", "a Solana address is 32 to 44 base58 characters")
            row.chain, row.address = "solana", spec.address
        elif spec.kind != "paper":
            raise Invalid("kind", f"one of {', '.join(KINDS)}")
        async with self.sessions() as s:
            taken = await s.scalar(select(PortfolioAccountRow.id).where(PortfolioAccountRow.owner_id == owner,
                                                                        PortfolioAccountRow.name == row.name))
            if taken is not None:
                raise Invalid("name", f"you already have an account named {row.name!r}")
            if spec.kind == "paper" and await s.scalar(select(PortfolioAccountRow.id).where(
                    PortfolioAccountRow.owner_id == owner, PortfolioAccountRow.kind == "paper")) is not None:
                raise Invalid("kind", "paper trading is already connected")
            s.add(row)
            await s.commit()
        self.start_sync(owner, row.id)
        return row

    async def _check_exchange(self, spec: Connect) -> None:
        from marketpulse.portfolio import exchange as ex

        if not spec.exchange:
            raise Invalid("exchange", "a ccxt exchange id is required (binance, kraken, coinbase…)")
        if not spec.api_key or len(spec.api_key) < 8:
            raise Invalid("api_key", "the exchange's API key is required")
        if not spec.secret or len(spec.secret) < 8:
            raise Invalid("secret", "the API key's secret is required")
        url = self.settings.portfolio_exchange_urls.get(spec.exchange)

        def check() -> None:
            client = ex.client(spec.exchange or "", url, spec.api_key or "", spec.secret or "")
            ex.check_read_only(client)

        try:
            await asyncio.to_thread(check)
        except ex.ExchangeRefused as exc:
            raise Invalid("exchange" if "unknown exchange" in str(exc) else "api_key", str(exc)) from None
        except ex.ExchangeUnavailable as exc:
            raise Unavailable(f"the exchange could not be asked: {exc}") from None

    async def accounts(self, owner: str) -> Sequence[PortfolioAccountRow]:
        async with self.sessions() as s:
            return (await s.execute(select(PortfolioAccountRow).where(PortfolioAccountRow.owner_id == owner)
                                    .order_by(PortfolioAccountRow.created_at_ms, PortfolioAccountRow.id))
                    ).scalars().all()

    async def account(self, owner: str, account_id: str) -> PortfolioAccountRow | None:
        async with self.sessions() as s:
            return (await s.execute(select(PortfolioAccountRow).where(
                PortfolioAccountRow.owner_id == owner, PortfolioAccountRow.id == account_id))).scalar_one_or_none()

    async def remove(self, owner: str, account_id: str) -> bool:
        """Forget a connection, its keys and its holdings; transactions already synced stay in the tax history."""
        task = self._tasks.get(account_id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        async with self.sessions() as s:
            row = await s.scalar(select(PortfolioAccountRow).where(PortfolioAccountRow.owner_id == owner,
                                                                   PortfolioAccountRow.id == account_id))
            if row is None:
                return False
            await s.execute(delete(PortfolioHoldingRow).where(PortfolioHoldingRow.account_id == account_id))
            await s.delete(row)
            await s.commit()
        return True

    # ---- sync -------------------------------------------------------------------------------------------------------

    def start_sync(self, owner: str, account_id: str) -> bool:
        """Start a background sync unless one of this account is running; False when one was."""
        if account_id in self._tasks:
            return False
        task = asyncio.create_task(self.sync(owner, account_id), name=f"portfolio-sync:{account_id}")
        self._tasks[account_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(account_id, None))
        return True

    async def wait(self) -> None:
        """Until every sync started here has finished (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)
        if self.dev_exchange is not None:
            await asyncio.to_thread(self.dev_exchange.stop)
            self.dev_exchange = None

    async def sync(self, owner: str, account_id: str) -> None:
        """One sync of one account: holdings replaced, new history stored page by page; the outcome is the row's
        status (`ok`, or `error` with the reason), never an exception."""
        row = await self.account(owner, account_id)
        if row is None:
            return
        await self._set(account_id, status="syncing")
        try:
            if row.kind == "exchange":
                holdings = await self._sync_exchange(row)
            elif row.kind == "evm":
                holdings = await self._sync_evm(row)
            elif row.kind == "solana":
                holdings = await self._sync_solana(row)
            else:
                holdings = await self._sync_paper(row)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            known = isinstance(exc, (RuntimeError, ValueError))
            reason = str(exc)[:500] if known else f"internal error ({type(exc).__name__})"
            if not known:
                log.exception("portfolio sync failed", account=account_id)
            await self._set(account_id, status="error", last_error=reason)
            return
        now = self.clock.now_ms()
        async with self.sessions() as s:
            await s.execute(delete(PortfolioHoldingRow).where(PortfolioHoldingRow.account_id == account_id))
            s.add_all([PortfolioHoldingRow(account_id=account_id, asset=asset[:32], owner_id=owner,
                                           amount=format(core.dec(amount) or amount, "f"), updated_at_ms=now)
                       for asset, amount in holdings.items() if amount != 0])
            found = await s.get(PortfolioAccountRow, account_id)
            if found is not None:
                found.status, found.last_error, found.last_sync_ms = "ok", None, now
            await s.commit()

    async def _set(self, account_id: str, **values: Any) -> None:
        async with self.sessions() as s:
            row = await s.get(PortfolioAccountRow, account_id)
            if row is None:
                return
            for key, value in values.items():
                setattr(row, key, value)
            await s.commit()

    async def _store_page(self, row: PortfolioAccountRow, transactions: list[Transaction], source: str,
                          cursors: dict[str, Any]) -> None:
        """A page's transactions (those not stored yet) and the cursors after it, in one transaction."""
        now = self.clock.now_ms()
        keyed = {dedupe_key(tx): (i, tx) for i, tx in enumerate(transactions)}
        async with self.sessions() as s:
            known: set[str] = set()
            keys = list(keyed)
            for start in range(0, len(keys), 500):
                known.update((await s.execute(select(TaxTransactionRow.dedupe_key).where(
                    TaxTransactionRow.owner_id == row.owner_id,
                    TaxTransactionRow.dedupe_key.in_(keys[start:start + 500])))).scalars())
            fresh = [TaxTransactionRow(
                id=str(uuid.uuid4()), owner_id=row.owner_id, dedupe_key=key, timestamp_ms=tx.timestamp_ms,
                type=tx.type.value, asset=tx.asset[:32], amount=str(tx.amount),
                price_usd=None if tx.price_usd is None else str(tx.price_usd), fee_usd=str(tx.fee_usd),
                account=tx.account[:64], tx_id=tx.tx_id[:128], source=source[:16], imported_at_ms=now, line=i)
                for key, (i, tx) in keyed.items() if key not in known]
            s.add_all(fresh)
            found = await s.get(PortfolioAccountRow, row.id)
            if found is not None:
                found.cursors = dict(cursors)
                found.transactions = (found.transactions or 0) + len(fresh)
            await s.commit()
        row.cursors = dict(cursors)

    async def _sync_exchange(self, row: PortfolioAccountRow) -> dict[str, Decimal]:
        from marketpulse.portfolio import exchange as ex

        assert row.exchange and row.api_key_sealed and row.secret_sealed
        url = self.settings.portfolio_exchange_urls.get(row.exchange)
        key, secret = self.vault.open(row.api_key_sealed), self.vault.open(row.secret_sealed)
        client = await asyncio.to_thread(ex.client, row.exchange, url, key, secret)
        held = await asyncio.to_thread(ex.balances, client)
        cursors = dict(row.cursors or {})
        assets = set(held) | set(cursors.get("assets", []))
        pages = ex.history(client, cursors, assets, HISTORY_START_MS, self.clock.now_ms())
        prices = Prices(self.sessions, self.library)
        while (page := await asyncio.to_thread(next, pages, None)) is not None:
            mapper: Callable[[Mapping[str, Any], str, core.PriceOf], list[Transaction]]
            if page.stream.startswith("trades:"):
                mapper, pairs = core.trade_transactions, [p for r in page.records
                                                          for p in core.priced_pairs_of_trade(r)]
            elif page.stream == "funding":
                mapper, pairs = core.funding_transactions, [(str(r.get("code")), int(r["timestamp"]))
                                                            for r in page.records]
            else:
                mapper, pairs = core.transfer_transactions, [(str(r.get("currency")), int(r["timestamp"]))
                                                             for r in page.records]
                assets.update(str(r.get("currency")) for r in page.records)
            await prices.prefetch(pairs)
            txs = [tx for r in page.records for tx in mapper(r, row.name, prices.known)]
            cursors[page.stream] = page.cursor
            cursors["assets"] = sorted(assets)
            await self._store_page(row, txs, row.exchange, cursors)
        return held

    async def _sync_evm(self, row: PortfolioAccountRow) -> dict[str, Decimal]:
        from marketpulse.portfolio.evm import EvmWallet

        assert row.chain and row.address
        config = self.settings.portfolio_evm_chains.get(row.chain)
        if config is None:
            raise Invalid("chain", f"the chain {row.chain!r} is no longer configured")
        wallet = EvmWallet(row.chain, config)
        try:
            await wallet.check_chain()
            held = await wallet.balances(row.address)
            latest = await wallet.latest()
            cursors = dict(row.cursors or {})
            prices = Prices(self.sessions, self.library)
            first = int(cursors.get("block", config.start_block))
            while first <= latest:
                last = min(latest, first + config.blocks_per_sync - 1)
                moves = await wallet.transfers(row.address, first, last)
                await prices.prefetch((m.asset, m.time_ms) for m in moves)
                txs = []
                for m in moves:
                    unit = prices.known(m.asset, m.time_ms)
                    tx_id = m.tx_hash if m.log_index < 0 else f"{m.tx_hash}"
                    txs.append(core.onchain_transfer(m.time_ms, m.asset, m.amount, m.incoming, row.name, tx_id,
                                                     unit))
                sent = {m.tx_hash: m.time_ms for m in moves if not m.incoming}
                for tx_hash, at in sent.items():
                    gas = await wallet.gas_paid(row.address, tx_hash)
                    if gas:
                        native = await prices.at(config.native, at)
                        txs.append(Transaction(at, TxType.FEE, config.native, gas, native, Decimal(0), row.name,
                                               f"{tx_hash}:gas"))
                cursors["block"] = last + 1
                await self._store_page(row, txs, "evm", cursors)
                first = last + 1
            return held
        finally:
            await wallet.close()

    async def _sync_solana(self, row: PortfolioAccountRow) -> dict[str, Decimal]:
        from marketpulse.portfolio.solana import SolanaWallet

        assert row.address and self.settings.portfolio_solana_rpc_url
        wallet = SolanaWallet(self.settings.portfolio_solana_rpc_url, self.settings.portfolio_solana_tokens)
        try:
            held = await wallet.balances(row.address)
            cursors = dict(row.cursors or {})
            fresh = await wallet.new_signatures(row.address, cursors.get("signature"))
            if fresh:
                cursors["signature"] = fresh[0]["signature"]
                cursors["signatures"] = int(cursors.get("signatures", 0)) + len(fresh)
                cursors["last_activity_ms"] = max(int(s.get("blockTime") or 0) for s in fresh) * 1000
                await self._store_page(row, [], "solana", cursors)
            return held
        finally:
            await wallet.close()

    async def _sync_paper(self, row: PortfolioAccountRow) -> dict[str, Decimal]:
        """Paper trading as a source: its equity (as PAPER-USD) and its fills as buys and sells."""
        cursors = dict(row.cursors or {})
        since = int(cursors.get("fill_ms", 0))
        async with self.sessions() as s:
            account = await s.get(PaperAccountRow, row.owner_id)
            positions = (await s.execute(select(PaperPositionRow).where(
                PaperPositionRow.owner_id == row.owner_id))).scalars().all()
            fills = (await s.execute(select(PaperFillRow).where(
                PaperFillRow.owner_id == row.owner_id, PaperFillRow.time_ms >= since)
                .order_by(PaperFillRow.time_ms, PaperFillRow.id))).scalars().all()
        seen = set(cursors.get("fill_ids", []))
        fresh = [f for f in fills if f.time_ms > since or f.id not in seen]
        if fresh:
            txs = [paper_transaction(f, row.name) for f in fresh]
            last = fresh[-1].time_ms
            cursors["fill_ids"] = [f.id for f in fills if f.time_ms == last] + \
                (list(seen) if last == since else [])
            cursors["fill_ms"] = last
            await self._store_page(row, [t for t in txs if t is not None], "paper", cursors)
        if account is None:
            return {}
        equity = account.cash + sum(p.quantity * (p.mark_price - p.avg_price) for p in positions)
        return {PAPER_ASSET: Decimal(repr(round(equity, 8)))}

    # ---- the view ----------------------------------------------------------------------------------------------------

    async def view(self, owner: str) -> View:
        now = self.market_clock.now_ms()
        accounts = list(await self.accounts(owner))
        valuation = await self._value(owner, accounts, now)
        return View(now, valuation, accounts)

    async def _value(self, owner: str, accounts: Sequence[PortfolioAccountRow], now: int) -> core.Valuation:
        async with self.sessions() as s:
            rows = (await s.execute(select(PortfolioHoldingRow).where(PortfolioHoldingRow.owner_id == owner))
                    ).scalars().all()
            names = [a.name for a in accounts]
            txs = (await s.execute(select(TaxTransactionRow).where(
                TaxTransactionRow.owner_id == owner, TaxTransactionRow.account.in_(names or [""]),
                TaxTransactionRow.timestamp_ms <= now))).scalars().all()
        holdings = [Holding(r.account_id, r.asset, Decimal(r.amount)) for r in rows]
        prices = Prices(self.sessions)
        unit: dict[str, Decimal | None] = {}
        for asset in {h.asset for h in holdings}:
            unit[asset] = Decimal(1) if asset == PAPER_ASSET else await prices.at(asset, now)
        history = [_transaction(r) for r in txs]
        lots = await asyncio.to_thread(open_lots, history, Method.FIFO, False)
        basis = {asset: totals for (asset, _account), totals in lots.items()}
        return core.value(holdings, unit, basis, {PAPER_ASSET: "paper"})

    # ---- snapshots and history --------------------------------------------------------------------------------------

    async def snapshot(self, owner: str) -> PortfolioSnapshotRow:
        """Store (or overwrite) the current market hour's snapshot of the owner's portfolio; keyed by hour, so a
        repeated or overlapping run changes nothing but the figures."""
        now = self.market_clock.now_ms()
        hour = core.hour_of(now)
        accounts = list(await self.accounts(owner))
        valuation = await self._value(owner, accounts, now)
        btc = await Prices(self.sessions).at("BTC", now)
        async with self.sessions() as s:
            previous = await s.scalar(select(PortfolioSnapshotRow.time_ms).where(
                PortfolioSnapshotRow.owner_id == owner, PortfolioSnapshotRow.time_ms < hour)
                .order_by(PortfolioSnapshotRow.time_ms.desc()).limit(1))
            names = [a.name for a in accounts] or [""]
            moved = (await s.execute(select(TaxTransactionRow).where(
                TaxTransactionRow.owner_id == owner, TaxTransactionRow.account.in_(names),
                TaxTransactionRow.type.in_([t.value for t in core.FLOW_IN | core.FLOW_OUT]),
                TaxTransactionRow.timestamp_ms > (previous if previous is not None else now),
                TaxTransactionRow.timestamp_ms <= now))).scalars().all()
            flow = core.net_flow_usd(_transaction(r) for r in moved)
            row = await s.get(PortfolioSnapshotRow, (owner, hour))
            if row is None:
                row = PortfolioSnapshotRow(owner_id=owner, time_ms=hour, value_usd=0.0, flow_usd=0.0, by_asset={})
                s.add(row)
            row.value_usd, row.flow_usd = valuation.total_usd, flow
            row.btc_usd = None if btc is None else float(btc)
            row.by_asset = {line.asset: round(line.value_usd, 2) for line in valuation.by_asset}
            await s.commit()
        return row

    async def hourly(self) -> int:
        """The snapshot duty's step: sync accounts not synced for an hour, snapshot every owner with accounts, and
        thin snapshots older than 90 days to one a day. Returns how many owners were snapshotted."""
        wall = self.clock.now_ms()
        async with self.sessions() as s:
            rows = (await s.execute(select(PortfolioAccountRow))).scalars().all()
        owners = sorted({r.owner_id for r in rows})
        for r in rows:
            if r.last_sync_ms is None or wall - r.last_sync_ms >= SYNC_EVERY_MS:
                self.start_sync(r.owner_id, r.id)
        await self.wait()
        for owner in owners:
            try:
                await self.snapshot(owner)
            except Exception:
                log.exception("portfolio snapshot failed", owner=owner)
        await self.thin(self.market_clock.now_ms())
        return len(owners)

    async def thin(self, now: int) -> int:
        async with self.sessions() as s:
            found = (await s.execute(select(PortfolioSnapshotRow.owner_id, PortfolioSnapshotRow.time_ms).where(
                PortfolioSnapshotRow.time_ms < now - core.FULL_RESOLUTION_MS))).all()
            by_owner: dict[str, list[int]] = {}
            for owner, t in found:
                by_owner.setdefault(owner, []).append(t)
            gone = 0
            for owner, times in by_owner.items():
                drop = core.expired_snapshots(times, now)
                for start in range(0, len(drop), 500):
                    await s.execute(delete(PortfolioSnapshotRow).where(
                        PortfolioSnapshotRow.owner_id == owner,
                        PortfolioSnapshotRow.time_ms.in_(drop[start:start + 500])))
                gone += len(drop)
            await s.commit()
        return gone

    async def history(self, owner: str, start_ms: int, end_ms: int, step_ms: int) -> History:
        async with self.sessions() as s:
            rows = (await s.execute(select(PortfolioSnapshotRow).where(
                PortfolioSnapshotRow.owner_id == owner, PortfolioSnapshotRow.time_ms >= start_ms,
                PortfolioSnapshotRow.time_ms < end_ms).order_by(PortfolioSnapshotRow.time_ms))).scalars().all()
        points = core.bucket([Point(r.time_ms, r.value_usd, r.flow_usd, r.btc_usd) for r in rows], step_ms)
        if points:  # the first point's flows came before the range: its value is the starting money
            points[0] = Point(points[0].time_ms, points[0].value_usd, 0.0, points[0].btc_usd)
        return History(points, core.performance(points))


def paper_transaction(fill: PaperFillRow, account: str) -> Transaction | None:
    base = fill.symbol[:-4] if fill.symbol.endswith("USDT") else fill.symbol
    if fill.quantity <= 0 or fill.price <= 0:
        return None
    kind = TxType.BUY if fill.side == "buy" else TxType.SELL
    return Transaction(fill.time_ms, kind, base, Decimal(repr(fill.quantity)), Decimal(repr(fill.price)),
                       Decimal(repr(fill.fee)), account, f"paper:{fill.id}")


def _transaction(r: TaxTransactionRow) -> Transaction:
    return Transaction(r.timestamp_ms, TxType(r.type), r.asset, Decimal(r.amount),
                       None if r.price_usd is None else Decimal(r.price_usd), Decimal(r.fee_usd), r.account, r.tx_id)


