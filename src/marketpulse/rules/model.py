"""An alert rule as the user writes it (the wire shape) and its validation. Pure: no I/O.

Rule alerts are the user's own conditions over market fields, indicators and platform events; they are not the
volume-spike alerts of `marketpulse.detection` (those are one of the events a rule can wait for).

    {"name": "BTC above 100k", "symbols": ["BTCUSDT"],
     "conditions": {"all": [{"field": "price", "op": "crosses_above", "value": 100000}]},
     "channels": ["<destination id>"], "frequency": "once_per_bar", "interval": "1m", "cooldown_s": 300}

Targets: `symbols` (a list, or "*" for every symbol), `symbol` (one), or `watchlist` (a watchlist id): exactly one.
Conditions: a group `{"all": [...]}` (AND) or `{"any": [...]}` (OR) of conditions and nested groups. A condition is
- a market field: `{"field": F, "op": OP, ...}` with F one of MARKET_FIELDS;
- an indicator on the rule's closed `interval` candles: `{"field": "rsi", "period": 14, "op": "gt", "value": 70}`
  (INDICATORS; Bollinger bands take `mult`, default 2);
- an event the platform raises: `{"event": "volume_spike", "alert_type": "SPIKE"}`, `{"event": "paper_fill"}`,
  `{"event": "strategy_signal", "strategy": "ema_cross"}`.
Operators take `value` (gt, gte, lt, lte, crosses_above, crosses_below, crosses), `value` and `window` (moves_up_pct,
moves_down_pct: a move of `value` percent against the value `window` ago, window one of the intervals 1m … 1d), or
`lower` and `upper` (enters_channel, exits_channel).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from marketpulse.api.types import FiniteFloat, Symbol
from marketpulse.marketdata.intervals import Interval, IntervalField
from marketpulse.marketdata.models import exchange_symbol
from marketpulse.times import EpochMs

# Fields read from the live market table (`market.tickers`) or derived from it by the engine.
MARKET_FIELDS = ("price", "mark_price", "change_pct_24h", "change_pct_1h", "change_pct_4h", "quote_volume_24h",
                 "volume_ratio_1h", "funding_rate", "open_interest_usd", "open_interest_change_pct_1h")
MOVABLE_FIELDS = ("price", "mark_price", "quote_volume_24h", "funding_rate", "open_interest_usd")
INDICATORS = ("rsi", "ema", "sma", "atr", "bb_upper", "bb_middle", "bb_lower")
VALUE_OPS = ("gt", "gte", "lt", "lte", "crosses_above", "crosses_below", "crosses")
MOVE_OPS = ("moves_up_pct", "moves_down_pct")
CHANNEL_OPS = ("enters_channel", "exits_channel")
OPS = VALUE_OPS + MOVE_OPS + CHANNEL_OPS
EVENTS = ("volume_spike", "paper_fill", "strategy_signal")
FREQUENCIES = ("once", "once_per_bar", "once_per_bar_close", "every_time")
MAX_CONDITIONS = 20  # leaves in one rule
MAX_DEPTH = 4  # nested groups
MAX_SYMBOLS = 600
MAX_CHANNELS = 10

Op = Literal["gt", "gte", "lt", "lte", "crosses_above", "crosses_below", "crosses", "moves_up_pct",
             "moves_down_pct", "enters_channel", "exits_channel"]
Frequency = Literal["once", "once_per_bar", "once_per_bar_close", "every_time"]
# How a match is treated in the owner's quiet hours (delivery.cadence): low ones are held or dropped as the owner
# chose, normal ones are held until the quiet hours end, high ones are delivered at once.
Priority = Literal["low", "normal", "high"]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True, pattern=r"^[^\x00]*$")]
ChannelId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00]*$")]
Threshold = Annotated[float, Field(allow_inf_nan=False, ge=-1e15, le=1e15)]


class FieldCondition(BaseModel):
    """A market field or an indicator compared with a number, a move, or a channel."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description=f"one of {', '.join(MARKET_FIELDS + INDICATORS)}")
    op: Op
    value: Threshold | None = None
    lower: Threshold | None = None
    upper: Threshold | None = None
    window: IntervalField | None = Field(None, description="moves_up_pct / moves_down_pct: 1m … 1d")
    period: int | None = Field(None, ge=1, le=500, description="indicators: bars (default 14, Bollinger 20)")
    mult: FiniteFloat | None = Field(None, gt=0, le=10, description="Bollinger bands: standard deviations (2)")

    @field_validator("field")
    @classmethod
    def _known_field(cls, v: str) -> str:
        if v not in MARKET_FIELDS + INDICATORS:
            raise ValueError(f"unknown field {v!r}: one of {', '.join(MARKET_FIELDS + INDICATORS)}")
        return v

    @model_validator(mode="after")
    def _operands(self) -> FieldCondition:
        needs = _operands_of(self.op)
        for name in ("value", "lower", "upper", "window"):
            given = getattr(self, name) is not None
            if name in needs and not given:
                raise ValueError(f"{self.op} needs {name!r}")
            if given and name not in needs:
                raise ValueError(f"{name!r} does not apply to {self.op}")
        if self.op in CHANNEL_OPS and self.lower is not None and self.upper is not None and self.lower >= self.upper:
            raise ValueError("lower must be below upper")
        if self.op in MOVE_OPS and self.value is not None and self.value <= 0:
            raise ValueError(f"{self.op} needs a positive percentage 'value'")
        if self.op in MOVE_OPS and self.field not in MOVABLE_FIELDS:
            raise ValueError(f"{self.op} applies to {', '.join(MOVABLE_FIELDS)}")
        if self.field not in INDICATORS and (self.period is not None or self.mult is not None):
            raise ValueError("'period' and 'mult' apply to indicators only")
        if self.mult is not None and not self.field.startswith("bb_"):
            raise ValueError("'mult' applies to Bollinger bands only")
        return self

    @property
    def is_indicator(self) -> bool:
        return self.field in INDICATORS


def _operands_of(op: str) -> tuple[str, ...]:
    if op in CHANNEL_OPS:
        return ("lower", "upper")
    if op in MOVE_OPS:
        return ("value", "window")
    return ("value",)


class EventCondition(BaseModel):
    """Something the platform raises: a volume spike (of a type), one of the owner's paper fills, a strategy signal."""

    model_config = ConfigDict(extra="forbid")

    event: Literal["volume_spike", "paper_fill", "strategy_signal"]
    alert_type: Literal["SPIKE", "HALF_UPDATE", "FULL_UPDATE"] | None = None
    strategy: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None

    @model_validator(mode="after")
    def _fits(self) -> EventCondition:
        if self.alert_type is not None and self.event != "volume_spike":
            raise ValueError("'alert_type' applies to volume_spike only")
        if self.strategy is not None and self.event != "strategy_signal":
            raise ValueError("'strategy' applies to strategy_signal only")
        return self


def _kind_of(item: Any) -> str | None:
    """Which model a condition item is: a group (all/any), an event, or a field condition; None: none of them."""
    keys = set(item) if isinstance(item, dict) else set(vars(item)) if isinstance(item, BaseModel) else set()
    if keys & {"all", "any"}:
        return "group"
    if "event" in keys:
        return "event"
    if "field" in keys:
        return "field"
    return None


def _leaf_kind(item: Any) -> str | None:
    kind = _kind_of(item)
    return None if kind == "group" else kind


_ITEM_ERROR = "a condition has 'field', 'event', or is a group with 'all' or 'any'"
_DEEPEST_ERROR = f"a condition has 'field' or 'event' (groups nest at most {MAX_DEPTH} deep)"


class GroupBase(BaseModel):
    """`{"all": [...]}` (every item holds) or `{"any": [...]}` (one does); items are conditions or groups.

    The levels are separate models (Group → Group2 → … → Group4, whose items are conditions only) rather than one
    recursive model, so the published schema is finite: clients and fuzzers can generate it."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _one_kind(self) -> GroupBase:
        if (getattr(self, "all") is None) == (getattr(self, "any") is None):  # noqa: B009 (the field, not builtin)
            raise ValueError("a group has exactly one of 'all' or 'any'")
        return self

    @property
    def kind(self) -> str:
        return "all" if getattr(self, "all") is not None else "any"  # noqa: B009

    @property
    def items(self) -> list[GroupBase | FieldCondition | EventCondition]:
        found = getattr(self, self.kind)
        return list(found or [])


Item4 = Annotated[Annotated[FieldCondition, Tag("field")] | Annotated[EventCondition, Tag("event")],
                  Discriminator(_leaf_kind, custom_error_type="condition", custom_error_message=_DEEPEST_ERROR)]


class Group4(GroupBase):
    all: list[Item4] | None = Field(None, min_length=1, max_length=MAX_CONDITIONS)
    any: list[Item4] | None = Field(None, min_length=1, max_length=MAX_CONDITIONS)


Item3 = Annotated[Annotated[Group4, Tag("group")] | Annotated[FieldCondition, Tag("field")]
                  | Annotated[EventCondition, Tag("event")],
                  Discriminator(_kind_of, custom_error_type="condition", custom_error_message=_ITEM_ERROR)]


class Group3(GroupBase):
    all: list[Item3] | None = Field(None, min_length=1, max_length=MAX_CONDITIONS)
    any: list[Item3] | None = Field(None, min_length=1, max_length=MAX_CONDITIONS)


Item2 = Annotated[Annotated[Group3, Tag("group")] | Annotated[FieldCondition, Tag("field")]
                  | Annotated[EventCondition, Tag("event")],
                  Discriminator(_kind_of, custom_error_type="condition", custom_error_message=_ITEM_ERROR)]


class Group2(GroupBase):
    all: list[Item2] | None = Field(None, min_length=1, max_length=MAX_CONDITIONS)
    any: list[Item2] | None = Field(None, min_length=1, max_length=MAX_CONDITIONS)


Item = Annotated[Annotated[Group2, Tag("group")] | Annotated[FieldCondition, Tag("field")]
                 | Annotated[EventCondition, Tag("event")],
                 Discriminator(_kind_of, custom_error_type="condition", custom_error_message=_ITEM_ERROR)]


class Group(GroupBase):
    """A rule's conditions: the outermost group."""

    all: list[Item] | None = Field(None, min_length=1, max_length=MAX_CONDITIONS)
    any: list[Item] | None = Field(None, min_length=1, max_length=MAX_CONDITIONS)


def leaves(group: GroupBase) -> list[FieldCondition | EventCondition]:
    out: list[FieldCondition | EventCondition] = []
    for item in group.items:
        out.extend(leaves(item) if isinstance(item, GroupBase) else [item])
    return out


class RuleIn(BaseModel):
    """A rule as POSTed (and PUT: the whole rule again)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    symbols: list[Symbol] | Literal["*"] | None = Field(None, examples=[["BTCUSDT"], "*"])
    symbol: Symbol | None = None
    watchlist: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    conditions: Group
    channels: list[ChannelId] = Field(default_factory=list, max_length=MAX_CHANNELS)
    frequency: Frequency = "once_per_bar"
    interval: IntervalField = Interval.M1
    cooldown_s: int = Field(0, ge=0, le=30 * 86_400)
    expires_at: EpochMs | None = None
    enabled: bool = True
    hysteresis_pct: float = Field(0.0, ge=0, le=50, allow_inf_nan=False,
                                  description="a crossing re-arms once the value is back past the line by this %")
    priority: Priority = Field("normal", description="in the owner's quiet hours: low ones are held or dropped (the "
                                                     "owner's choice), normal ones held until they end, high ones "
                                                     "delivered at once")

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str] | str | None) -> list[str] | str | None:
        if isinstance(v, list):
            if not v:
                raise ValueError("name at least one symbol, or '*' for every symbol")
            if len(v) > MAX_SYMBOLS:
                raise ValueError(f"at most {MAX_SYMBOLS} symbols; use '*' for every symbol")
            return sorted({exchange_symbol(s) for s in v})
        return v

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, v: str | None) -> str | None:
        return None if v is None else exchange_symbol(v)

    @field_validator("conditions")
    @classmethod
    def _bounded(cls, v: Group) -> Group:
        if len(leaves(v)) > MAX_CONDITIONS:
            raise ValueError(f"at most {MAX_CONDITIONS} conditions in a rule")
        return v

    @field_validator("channels")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _one_target(self) -> RuleIn:
        given = [n for n in ("symbols", "symbol", "watchlist") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("a rule targets exactly one of 'symbols' (a list or '*'), 'symbol' or 'watchlist'")
        return self

    def target_symbols(self) -> list[str] | Literal["*"] | None:
        """The symbols named ("*": all); None for a watchlist (resolved where watchlists are stored)."""
        if self.symbol is not None:
            return [self.symbol]
        return self.symbols

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)




def bad_field(loc: tuple[str | int, ...], msg: str, value: Any = None) -> dict[str, Any]:
    """One error in FastAPI's 422 shape (`api.errors` renders it)."""
    return {"loc": ("body", *loc), "msg": msg, "type": "value_error", "input": value}
