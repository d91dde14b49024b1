"""The rule-alert worker: market updates and platform events in, matches stored and queued for delivery out.

Every worker holds every active rule (rebuilt from the store on start, then following `rules.changed`) and reads
every update in consumer groups of its own; the store keeps each match once (`alert_history` is unique per rule
and triggering event, the outbox per rule, event and destination), so several workers, a redelivered message or a
restarted worker notify nothing twice. A match is written with its outbox rows in one transaction
(`RulesService.record`); a failed write is retried with the same matches until the store takes them, so a match
the engine made is never lost (the engine's state moved on when it matched; the store then catches up).

Each rule's trigger state per symbol (disarmed until its hysteresis band, when it last fired) is written in the same
transaction as the matches of the update that changed it (`alert_rule_states`, per rule version), and put back
when a worker starts: a restart neither re-fires a crossing the rule is disarmed for nor forgets a cooldown or the
bar it fired in.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable

import structlog

from marketpulse.bus import EventBus, Message, Subscription, topics
from marketpulse.detection.models import VolumeAlert
from marketpulse.rules.conditions import EventLeaf
from marketpulse.rules.engine import CompiledRule, Match, RuleEngine, compile_rule_for
from marketpulse.rules.feeds import MarketFeed
from marketpulse.rules.model import RuleIn
from marketpulse.rules.service import RulesService
from marketpulse.rules.tables import AlertRuleRow, AlertRuleStateRow

log = structlog.get_logger(__name__)
RETRY_DELAYS_S = (0.1, 0.5, 1.0, 2.0, 5.0)  # then every 5 s until the store takes the matches


class RuleWorker:
    def __init__(self, rules: RulesService, bus: EventBus, *, group: str | None = None) -> None:
        self.rules = rules
        self.bus = bus
        self.engine = RuleEngine(track_state=True)
        self.feed = MarketFeed(self.engine)
        self.group = group or f"rules-{uuid.uuid4().hex[:8]}"
        self._rows: dict[str, AlertRuleRow] = {}  # the rules the engine holds, as stored
        self._subs: list[Subscription] = []
        self.stored = 0  # matches stored (new ones), for tests and logs

    async def start(self) -> None:
        # Follow changes first, then load: a change made while loading is applied after it (versions decide).
        self._subs.append(await self.bus.subscribe(topics.RULES_CHANGED, self.group, self._on_change,
                                                   ephemeral=True))
        self._subs.append(await self.bus.subscribe(topics.WATCHLISTS_CHANGED, self.group, self._on_watchlist,
                                                   ephemeral=True))
        compiled = []
        for row in await self.rules.active_rules():
            if (rule := await self._compile(row)) is not None:
                compiled.append(rule)
                self._rows[row.id] = row
        self.engine.add_many(compiled)
        restored = self._restore(await self.rules.rule_states())
        log.info("rule engine built", rules=len(self.engine), states_restored=restored)
        bus, group = self.bus, self.group
        self._subs += [await bus.subscribe(topics.MARKET_TICKERS, group, self._on_tickers, ephemeral=True),
                       await bus.subscribe(topics.MARKET_CANDLES, group, self._on_candles, ephemeral=True),
                       await bus.subscribe(topics.ALERTS_VOLUME, group, self._on_volume_alert, ephemeral=True),
                       await bus.subscribe(topics.PAPER_FILLS, group, self._on_fill, ephemeral=True)]

    def _restore(self, states: Iterable[AlertRuleStateRow]) -> int:
        """Put stored trigger states back into the engine, those of the rule versions it holds; how many."""
        restored = 0
        for state in states:
            held = self._rows.get(state.rule_id)
            if held is not None and held.version == state.rule_version:
                self.engine.restore(state.rule_id, state.symbol, state.armed, state.last_fired_ms)
                restored += 1
        return restored

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.close()
        self._subs = []

    # --- rules -------------------------------------------------------------------------------------------------------

    async def _load(self, row: AlertRuleRow) -> None:
        known = self._rows.get(row.id)
        if known is not None and known.version > row.version:
            return
        self.engine.remove(row.id)
        self._rows.pop(row.id, None)
        if (rule := await self._compile(row)) is not None:
            self.engine.add(rule)
            self._rows[row.id] = row

    async def _compile(self, row: AlertRuleRow) -> CompiledRule | None:
        if not row.enabled:
            return None
        rule = RuleIn.model_validate(row.spec)
        symbols = await self.rules.watchlist_symbols(row.owner_id, rule.watchlist) if rule.watchlist else []
        return compile_rule_for(row.id, row.owner_id, rule, symbols)

    async def _on_change(self, msg: Message[topics.RulesChanged]) -> None:
        change = msg.data
        row = None if change.deleted else await self.rules.rule(change.rule_id)
        if row is None:
            self.engine.remove(change.rule_id)
            self._rows.pop(change.rule_id, None)
            return
        await self._load(row)

    async def _on_watchlist(self, msg: Message[topics.WatchlistChanged]) -> None:
        """A watchlist's symbols changed: the rules on it are compiled again over its symbols as stored now, keeping
        their trigger state on the symbols they still watch."""
        changed = msg.data
        on_it = [row for row in self._rows.values()
                 if row.owner_id == changed.owner_id and row.spec.get("watchlist") == changed.watchlist_id]
        if not on_it:
            return
        await self._store(())  # state changes so far are written before the rules' slots are replaced
        states = await self.rules.rule_states([row.id for row in on_it])
        for row in on_it:
            self.engine.remove(row.id)
            if (rule := await self._compile(row)) is not None:
                self.engine.add(rule)
        self._restore(states)
        log.info("rules follow their watchlist", watchlist=changed.watchlist_id, rules=len(on_it))

    def add_compiled(self, rule: CompiledRule, row: AlertRuleRow) -> None:
        """For tests and the benchmark: a rule straight into the engine."""
        self.engine.add(rule)
        self._rows[rule.id] = row

    # --- market and events -------------------------------------------------------------------------------------

    async def _on_tickers(self, msg: Message[topics.TickersEvent]) -> None:
        matches = [m for batch in self.feed.on_tickers(msg.data.time, msg.data.rows) for m in batch]
        await self._store(matches)

    async def _on_candles(self, msg: Message[topics.CandlesEvent]) -> None:
        await self._store(self.feed.on_candles(msg.data.candles))

    async def _on_volume_alert(self, msg: Message[VolumeAlert]) -> None:
        alert = msg.data
        event = EventLeaf("volume_spike", alert.alert_type)
        key = alert.id or f"{alert.symbol}:{alert.hour_timestamp}:{alert.alert_type}"
        await self._store(self.engine.on_event(event, alert.symbol, alert.timestamp, key))

    async def _on_fill(self, msg: Message[topics.PaperFill]) -> None:
        fill = msg.data
        await self._store(self.engine.on_event(EventLeaf("paper_fill"), fill.symbol, fill.time, fill.fill_id,
                                               owner_id=fill.owner_id))

    async def _store(self, matches: Iterable[Match]) -> None:
        batch = [(m, row, message(m, row)) for m in matches if (row := self._rows.get(m.rule_id)) is not None]
        states = [(c, row.version) for c in self.engine.take_state_changes()
                  if (row := self._rows.get(c.rule_id)) is not None]
        if not batch and not states:
            return
        for m, _, _ in batch:
            if m.disables:
                self._rows.pop(m.rule_id, None)
        for attempt in range(1_000_000):
            try:
                self.stored += len(await self.rules.record(batch, states))
                return
            except Exception:  # the store refused for now: keep the matches, try again
                delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
                log.warning("storing rule matches failed; retrying", matches=len(batch), in_s=delay, exc_info=True)
                await asyncio.sleep(delay)


def message(match: Match, row: AlertRuleRow) -> str:
    """The notification's text: the rule's name, the symbol, and what moved."""
    if match.key is None:
        return f"{row.name}: {match.symbol} {match.event_key.split(':', 1)[0].replace('_', ' ')}"
    return f"{row.name}: {match.symbol} {match.key} = {match.value:.8g}"
