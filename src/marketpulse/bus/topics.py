"""Every topic on the bus, each declared with its payload type (`Topic[T]`), in one place.

A payload is a msgspec Struct; the bus encodes it to JSON at `publish` and decodes it back to the Struct for each
delivery, so every consumer of a topic receives the same typed value (both bus implementations do this, so code
tested on the in-process bus meets the same payloads on Redis).

The one rule for bad data (the same for every consumer, because it is applied here and not in the consumers):
- a message that cannot be decoded into its topic's payload (not JSON, wrong shape, a number out of range) goes to
  the dead letters with the reason, and `bus_dead_letters_total{topic, reason}` counts it;
- a *batch* topic (a list of rows, or a mapping of values, inside one message) decodes each row on its own: valid
  rows are kept, the invalid ones are dropped and counted in `bus_rejected_rows_total{topic}`, so one bad candle
  cannot sink the 1,999 good ones of its minute, nor reach one consumer and not another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import msgspec

from marketpulse.detection.models import VolumeAlert
from marketpulse.marketdata.intervals import INTERVAL_NAMES, Interval
from marketpulse.marketdata.models import LIQUIDATION_SIDES, Candle, Liquidation, MarketRow
from marketpulse.wire import camel

T = TypeVar("T")

# Why a message was refused; the `reason` label of the dead-letter metric.
DecodeFailure = Literal["not_json", "schema"]


class UndecodableMessage(ValueError):
    """The payload can't become its topic's type: `kind` labels the metric, the text says why."""

    def __init__(self, kind: DecodeFailure, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind: DecodeFailure = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Decoded(Generic[T]):
    payload: T
    rejected: int = 0  # rows of a batch that were dropped


class Topic(Generic[T]):
    """A topic's name and its payload type. `T` is anything msgspec can encode and decode (normally a Struct)."""

    def __init__(self, name: str, payload: type[T]) -> None:
        self.name = name
        self.payload = payload
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(payload)

    def __repr__(self) -> str:
        return f"Topic({self.name!r}, {getattr(self.payload, '__name__', self.payload)})"

    def encode(self, payload: T) -> bytes:
        # Statically `T`; at run time anything msgspec can encode passes (a test playing a foreign producer sends
        # dicts, or `msgspec.Raw` bytes as they are). msgspec encodes NaN and infinity as null, which won't decode.
        return _ENCODER.encode(payload)

    def decode(self, raw: bytes) -> Decoded[T]:
        """The typed payload. msgspec refuses numbers beyond float range (1e999), and JSON has no NaN, so every
        float that comes out is finite."""
        try:
            return Decoded(self._decoder.decode(raw))
        except msgspec.ValidationError as exc:
            raise UndecodableMessage("schema", str(exc)) from None
        except msgspec.DecodeError as exc:
            raise UndecodableMessage("not_json", str(exc)) from None


class BatchTopic(Topic[T]):
    """A topic whose payload carries many rows in one field (`rows`: a list of `row`, or a mapping to `row`).

    The fast path decodes the whole message at once; only when that fails (or `valid` refuses a row) are the rows
    decoded one by one, keeping the valid ones (the envelope around them must still be valid). `valid` holds what
    the type alone can't say (a candle's interval must be a known one).
    """

    def __init__(self, name: str, payload: type[T], *, rows: str, row: Any,
                 valid: Callable[[Any], bool] | None = None) -> None:
        super().__init__(name, payload)
        self.rows_field = rows
        self._row_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(row)
        self._valid = valid

    def decode(self, raw: bytes) -> Decoded[T]:
        try:
            whole = self._decoder.decode(raw)
        except msgspec.ValidationError:
            return self._decode_rows(raw)  # a row, or the envelope, doesn't fit: find out which
        except msgspec.DecodeError as exc:
            raise UndecodableMessage("not_json", str(exc)) from None
        if self._valid is None or all(map(self._valid, _values(getattr(whole, self.rows_field)))):
            return Decoded(whole)
        return self._decode_rows(raw)

    def _decode_rows(self, raw: bytes) -> Decoded[T]:
        try:
            fields = _FIELDS.decode(raw)
            items = _ITEMS.decode(fields[self.rows_field])
        except (msgspec.ValidationError, KeyError):
            expected = f"expected an object with a {self.rows_field!r} array or object"
            raise UndecodableMessage("schema", expected) from None
        if isinstance(items, dict):
            kept: Any = {k: row for k, v in items.items() if (row := self._row(v)) is not None}
        else:
            kept = [row for row in map(self._row, items) if row is not None]
        # The envelope with no rows must decode on its own (Raw values are re-encoded verbatim).
        try:
            envelope: Any = self._decoder.decode(_ENCODER.encode({**fields, self.rows_field: type(items)()}))
        except msgspec.ValidationError as exc:
            raise UndecodableMessage("schema", str(exc)) from None
        return Decoded(msgspec.structs.replace(envelope, **{self.rows_field: kept}), len(items) - len(kept))

    def _row(self, raw: msgspec.Raw) -> Any:
        try:
            row = self._row_decoder.decode(raw)
        except msgspec.ValidationError:
            return None
        return row if self._valid is None or self._valid(row) else None


def _values(rows: Any) -> Any:
    return rows.values() if isinstance(rows, dict) else rows


_ENCODER = msgspec.json.Encoder()
_FIELDS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ITEMS = msgspec.json.Decoder(list[msgspec.Raw] | dict[str, msgspec.Raw])


# --- payloads ---------------------------------------------------------------------------------------------------


class TickersEvent(msgspec.Struct, frozen=True):
    """The market table's changed rows (ticker merged with mark price/funding and open interest)."""

    time: int  # epoch ms, market time
    rows: list[MarketRow]


class CandlesEvent(msgspec.Struct, frozen=True):
    """Closed candles (any number of symbols; a minute's batch for the replay)."""

    candles: list[Candle]
    interval: Interval = Interval.M1


class OpenInterestEvent(msgspec.Struct, frozen=True, rename=camel):
    """Open interest in USD by symbol, as of `as_of` (market time)."""

    as_of: int
    data: dict[str, float]


class LiquidationsEvent(msgspec.Struct, frozen=True):
    """Forced liquidations (any number of symbols), oldest first."""

    liquidations: list[Liquidation]


class PaperFill(msgspec.Struct, frozen=True):
    """A paper-trading fill, for its owner's screen."""

    owner_id: str
    order_id: str
    fill_id: str
    symbol: str
    side: str
    quantity: float
    price: float
    fee: float
    realized_pnl: float
    time: int
    account_id: str | None = None  # = owner_id (one account per owner for now)


class RiskHalt(msgspec.Struct, frozen=True):
    """An account halted by its daily-loss limit, until `halted_until`."""

    owner_id: str
    reason: str
    equity: float
    day_start_equity: float
    limit_pct: float
    halted_until: int
    time: int
    account_id: str | None = None


class UserNotification(msgspec.Struct, frozen=True):
    """An in-app notification (delivery's `in_app` channel), for its owner's notification centre."""

    owner_id: str
    id: int  # the notification's id (GET /api/v1/account/notifications)
    key: str  # its idempotency key: the browser shows one notification once
    title: str
    text: str
    kind: str
    time: int
    symbol: str | None = None
    url: str | None = None


class AccountChanged(msgspec.Struct, frozen=True):
    """A user's plan, status or existence changed (admin update or deletion): live connections follow it."""

    user_id: str
    plan: str
    status: str  # active, suspended, banned, or deleted


class RulesChanged(msgspec.Struct, frozen=True):
    """An alert rule was created, changed, paused, resumed or deleted: rule engines reload it from the store.

    Carries ids only (the store has the rule): a stale or repeated message reloads the same newest row."""

    rule_id: str
    owner_id: str
    version: int
    deleted: bool = False


class WatchlistChanged(msgspec.Struct, frozen=True):
    """A watchlist's symbols changed (added, removed, replaced) or it was deleted: rules on it follow (the rule
    engines reload the rules naming it, with the watchlist's symbols as stored now)."""

    watchlist_id: str
    owner_id: str
    deleted: bool = False


# --- topics -----------------------------------------------------------------------------------------------------

MARKET_TICKERS: BatchTopic[TickersEvent] = BatchTopic("market.tickers", TickersEvent, rows="rows", row=MarketRow)
MARKET_CANDLES: BatchTopic[CandlesEvent] = BatchTopic(
    "market.candles", CandlesEvent, rows="candles", row=Candle, valid=lambda c: c.interval in INTERVAL_NAMES
)
MARKET_OPEN_INTEREST: BatchTopic[OpenInterestEvent] = BatchTopic(
    "market.open_interest", OpenInterestEvent, rows="data", row=float, valid=lambda usd: usd >= 0
)
MARKET_LIQUIDATIONS: BatchTopic[LiquidationsEvent] = BatchTopic(
    "market.liquidations", LiquidationsEvent, rows="liquidations", row=Liquidation,
    valid=lambda liq: liq.side in LIQUIDATION_SIDES and liq.price > 0 and liq.quantity > 0 and liq.usd >= 0,
)
# A stored alert (its id set), camelCase on the wire; published only by the process whose insert created it.
ALERTS_VOLUME: Topic[VolumeAlert] = Topic("alerts.volume", VolumeAlert)
# Pushed to the owner's Socket.IO room (`user-{owner}`) by the realtime bridge.
PAPER_FILLS: Topic[PaperFill] = Topic("paper.fills", PaperFill)
RISK_HALTS: Topic[RiskHalt] = Topic("risk.halts", RiskHalt)
NOTIFICATIONS_USER: Topic[UserNotification] = Topic("notifications.user", UserNotification)
# Every API process moves (or disconnects) its own Socket.IO connections of that user to the new tier.
ACCOUNT_CHANGED: Topic[AccountChanged] = Topic("accounts.changed", AccountChanged)
# Alert rules changed (rule engines in every worker follow them).
RULES_CHANGED: Topic[RulesChanged] = Topic("rules.changed", RulesChanged)
# A watchlist's symbols changed (rule engines reload the rules on it).
WATCHLISTS_CHANGED: Topic[WatchlistChanged] = Topic("watchlists.changed", WatchlistChanged)


class SignalReceived(msgspec.Struct, frozen=True):
    """A signal was durably stored (`signal_history`, status received): a nudge for the signal workers, which also
    find waiting rows by polling, so a lost nudge only delays a signal."""

    signal_id: str
    config_id: str


class SignalConfigChanged(msgspec.Struct, frozen=True):
    """A signal config was created, changed or deleted: the computed-signal runner reloads it from the store."""

    config_id: str


SIGNALS_RECEIVED: Topic[SignalReceived] = Topic("signals.received", SignalReceived)
SIGNAL_CONFIGS_CHANGED: Topic[SignalConfigChanged] = Topic("signals.configs_changed", SignalConfigChanged)

ALL: tuple[Topic[Any], ...] = (MARKET_TICKERS, MARKET_CANDLES, MARKET_OPEN_INTEREST, MARKET_LIQUIDATIONS,
                                ALERTS_VOLUME, PAPER_FILLS, RISK_HALTS, NOTIFICATIONS_USER, ACCOUNT_CHANGED,
                                RULES_CHANGED, WATCHLISTS_CHANGED, SIGNALS_RECEIVED, SIGNAL_CONFIGS_CHANGED)
