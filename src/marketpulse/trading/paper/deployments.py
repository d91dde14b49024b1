"""Strategies deployed to paper: create/list/stop, and the loop that feeds them closed candles.

Each running deployment owns a `StrategyRunner` (the backtester's `Engine` plus the strategy). Per closed
minute: decide on an interval bar the minute closed late, step the engine, book its fills into the paper
account, and — when the minute completes an interval bar — run the strategy and send each order it submits
through the risk manager before it is accepted.

`deploy` only stores the row; the worker's `sync_from_store` starts it before the next candle batch, so an API
process and a worker process need nothing but the database between them. After every minute the runner's
snapshot (engine arrays, forming bar, order map; the bar history once per bar) is written to the row, so a
restarted worker resumes a deployment with its position instead of starting flat beside it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.backtest.engine import Engine, EngineSettings, Trade
from marketpulse.marketdata.intervals import interval_ms
from marketpulse.marketdata.models import Candle
from marketpulse.strategies import get_strategy
from marketpulse.trading.paper import store
from marketpulse.trading.paper.orders import OrderSpec, OrderType, Side
from marketpulse.trading.paper.service import (
    BookedFill,
    PaperTradingService,
    PositionNotFound,
    RiskRejected,
    UnknownSymbol,
)
from marketpulse.trading.paper.strategy_runner import (
    EngineFill,
    MinuteStep,
    Proposal,
    StrategyRunner,
    trades_in_snapshot,
)
from marketpulse.trading.paper.tables import PaperDeploymentRow

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DeploymentSpec:
    strategy: str
    symbol: str
    interval: str
    params: Mapping[str, Any]
    cash: float | None = None  # the engine's starting equity; None: the account's equity when deployed
    size: float = 1.0
    long_only: bool = False


class DeploymentNotFound(LookupError):
    pass


@dataclass
class _Live:
    row: PaperDeploymentRow
    runner: StrategyRunner
    orders: dict[int, str]  # engine order id → paper order id


class DeploymentService:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], paper: PaperTradingService, *, history_bars: int = 5_000
    ) -> None:
        self.sessions, self.paper, self.history_bars = sessions, paper, history_bars
        self._live: dict[str, _Live] = {}

    # --- lifecycle --------------------------------------------------------------------------------------------
    async def deploy(
        self, owner_id: str, spec: DeploymentSpec, *, require_market: bool = True
    ) -> PaperDeploymentRow:
        """Validate (ValueError naming the field; UnknownSymbol for a symbol with no market data) and start a
        deployment on the owner's paper account. `require_market=False` is for the demo's own deployment, whose
        symbol comes from the bundled sample before the replay has stored a candle of it."""
        strategy_cls = get_strategy(spec.strategy)
        params = strategy_cls.resolve_params(spec.params)
        interval_ms(spec.interval)
        if require_market and await self.paper.price_of(spec.symbol) is None:
            raise UnknownSymbol(spec.symbol)
        account = await self.paper.account(owner_id)  # also creates it: deployments reference the account
        cash = spec.cash if spec.cash is not None else account["equity"]
        now = self.paper.clock.now_ms()
        row = PaperDeploymentRow(
            id=str(uuid.uuid4()), owner_id=owner_id, strategy=spec.strategy, symbol=spec.symbol,
            interval=spec.interval, params=params, size=spec.size, long_only=spec.long_only, cash=cash,
            status="running", last_bar_ms=None, created_at_ms=now, stopped_at_ms=None,
        )
        async with self.sessions() as s:
            s.add(row)
            await s.commit()
        log.info("strategy deployed to paper", owner=owner_id, deployment=row.id, strategy=row.strategy)
        return row

    async def sync_from_store(self) -> None:
        """Run exactly the deployments the store marks running: new ones (deployed by an API process, or
        resumed after a restart) start, stopped ones stop."""
        async with self.sessions() as s:
            running = await store.running_deployment_ids(s)
            for gone in set(self._live) - running:
                del self._live[gone]
            for row in await store.deployments_by_id(s, running - set(self._live)):
                self._start(row)

    def unload(self) -> None:
        """Forget the running deployments (this process lost or is taking the paper-trading lease); the next
        `sync_from_store` rebuilds them from their stored snapshots."""
        self._live.clear()

    async def for_owner(self, owner_id: str) -> list[PaperDeploymentRow]:
        async with self.sessions() as s:
            return await store.deployments(s, owner_id)

    async def stop(self, owner_id: str, deployment_id: str, *, close_position: bool = False) -> PaperDeploymentRow:
        """Stop deciding and withdraw its unfilled orders. The position it holds is closed at the market when the
        owner asks (`close_position`), else it stays in the account as the deployment's, for the owner to close
        later (`PaperTradingService.close_position` with the deployment's id as its book)."""
        now = self.paper.clock.now_ms()
        async with self.sessions() as s:
            row = await store.get_deployment(s, owner_id, deployment_id)
            if row is None:
                raise DeploymentNotFound(deployment_id)
            if row.status == "running":
                row.status, row.stopped_at_ms = "stopped", now
                await store.cancel_deployment_orders(s, owner_id, deployment_id, "deployment stopped", now)
                await s.commit()
        self._live.pop(deployment_id, None)
        if close_position:
            with contextlib.suppress(PositionNotFound):  # it was flat
                await self.paper.close_position(owner_id, row.symbol, book=deployment_id)
        return row

    def trades(self, deployment_id: str, snapshot: bytes | None = None) -> list[Trade] | None:
        """The trades a deployment closed, plus the open one: from its runner when it runs in this process, else
        from its last stored snapshot; None when it never ran."""
        live = self._live.get(deployment_id)
        if live is not None:
            return live.runner.all_trades()
        return None if snapshot is None else trades_in_snapshot(snapshot)

    def _start(self, row: PaperDeploymentRow) -> None:
        cfg = self.paper.config
        settings = EngineSettings(
            taker_fee_bps=cfg.taker_fee_bps, maker_fee_bps=cfg.maker_fee_bps, slippage_bps=cfg.slippage_bps,
            size=row.size, long_only=row.long_only,
        )
        runner = StrategyRunner(
            get_strategy(row.strategy)(), row.params, interval_ms(row.interval), Engine(row.cash, settings),
            history_bars=self.history_bars, symbol=row.symbol, interval=row.interval,
        )
        runner.restore(row.engine_snapshot, row.history_snapshot)
        order_map = {int(k): v for k, v in (row.order_map or {}).items()}
        self._live[row.id] = _Live(row, runner, order_map)

    # --- the candle stream ------------------------------------------------------------------------------------
    async def on_candles(self, candles: Sequence[Candle]) -> None:
        minutes = sorted((c for c in candles if c.closed and c.interval == "1m"), key=lambda c: c.open_time)
        for live in list(self._live.values()):
            for c in minutes:
                if c.symbol == live.row.symbol:
                    await self._on_minute(live, c)

    async def _on_minute(self, live: _Live, c: Candle) -> None:
        try:
            runner = live.runner
            decided = False
            if runner.pending_close(c):
                decided = await self._decide(live)
            await self._check_entries_at_fill(live, c)
            step, complete = runner.on_minute(c)
            await self._book(live, step)
            if complete:
                decided = await self._decide(live) or decided
            await self._save(live, with_history=decided)
        except Exception:
            # The bus delivers this candle again. Forget the runner so it is rebuilt from its last stored snapshot
            # (before this minute); fills and orders carry ids derived from what they are, so the replayed minute
            # finds the ones it already stored instead of booking them twice.
            self._live.pop(live.row.id, None)
            raise

    async def _check_entries_at_fill(self, live: _Live, c: Candle) -> None:
        """Risk again where the entries fill (this minute's open, the engine's own sizing there): a gap, a halt or
        the account's other trades since the decision can refuse one now; a refused flip still exits."""
        if live.runner.last_minute is not None and c.open_time <= live.runner.last_minute:
            return  # a redelivered minute: its fills were decided the first time
        for p in live.runner.entries_at(c.open):
            refused = await self.paper.check_at_fill(
                live.row.owner_id, live.row.symbol, p.signed_units_estimate, c.open, live.row.id,
                (live.runner.engine.position, live.runner.engine.entry_price),
            )
            if refused is None:
                continue
            log.warning("deployment order rejected at fill", deployment=live.row.id, **refused.detail())
            live.runner.reject(p, c.open_time)
            order_id = live.orders.pop(p.engine_order_id, None)
            if order_id is not None:
                reason = f"at fill: {refused.reason}: {refused.message}"
                await self.paper.reject_open_order(live.row.owner_id, order_id, reason)

    async def _save(self, live: _Live, *, with_history: bool) -> None:
        values: dict[str, Any] = {
            "engine_snapshot": live.runner.snapshot(), "order_map": {str(k): v for k, v in live.orders.items()},
        }
        if with_history:
            values["history_snapshot"] = live.runner.history_snapshot()
            values["last_bar_ms"] = int(live.runner.frame().time[-1])
        async with self.sessions() as s:
            await store.update_deployment(s, live.row.owner_id, live.row.id, values)
            await s.commit()

    async def _book(self, live: _Live, step: MinuteStep) -> None:
        if not step.fills and not step.consumed_order_ids:
            return
        consumed = [live.orders.pop(oid) for oid in step.consumed_order_ids if oid in live.orders]
        fills = [self._booked(live, f, k, consumed) for k, f in enumerate(step.fills)]
        used = {f.order_id for f in fills}
        cancelled = {oid: "the engine had nothing to do (already on that side)" for oid in consumed if oid not in used}
        await self.paper.record_engine_fills(live.row.owner_id, fills, cancelled, live.row.id)

    @staticmethod
    def _booked(live: _Live, fill: EngineFill, k: int, consumed: list[str]) -> BookedFill:
        # Market orders from one decision fill together; a flip's exit and entry both belong to its one order.
        # The k-th fill of a minute is the same fill whenever that minute is replayed (exit first, then entry).
        fill_id = _stable_id(live.row.id, "fill", fill.time_ms, k)
        order_id = consumed[-1] if consumed else _stable_id(live.row.id, "exit", fill.time_ms)
        return BookedFill(order_id, live.row.symbol, fill.signed_units, fill.price, fill.fee, fill.time_ms, fill_id,
                          book=live.row.id)

    async def _decide(self, live: _Live) -> bool:
        proposals = live.runner.decide()
        bar_time = int(live.runner.frame().time[-1])
        bar_close_ms = bar_time + live.runner.interval_ms
        for p in proposals:
            await self._submit(live, p, bar_time, bar_close_ms)
        return True

    async def _submit(self, live: _Live, p: Proposal, bar_time: int, active_from: int) -> None:
        qty = abs(p.signed_units_estimate)
        if qty <= 0:
            return
        spec = OrderSpec(live.row.symbol, Side(p.side), OrderType.MARKET, qty)
        order_id = _stable_id(live.row.id, "order", bar_time, p.engine_order_id)
        try:
            order = await self.paper.place_order(
                live.row.owner_id, spec, deployment_id=live.row.id, active_from_ms=active_from, order_id=order_id
            )
        except RiskRejected as exc:
            log.warning("deployment order rejected by risk", deployment=live.row.id, **exc.rejection.detail())
            live.runner.reject(p, bar_time)
            await self.paper.record_rejected(live.row.owner_id, spec, exc.rejection, deployment_id=live.row.id,
                                             order_id=order_id)
            return
        live.orders[p.engine_order_id] = order.id


def _stable_id(deployment_id: str, *parts: object) -> str:
    """The same id every time the same deployment does the same thing (idempotent replays of a minute)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, ":".join([deployment_id, *map(str, parts)])))
