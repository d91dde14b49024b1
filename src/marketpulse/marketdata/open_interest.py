"""Open interest in USD notional per symbol: a stale-while-revalidate cache (pure) and its storage.

The HTTP routes (GET /api/v1/market/open-interest, POST …/ingest) are in `marketdata.views`.

Freshness (the thresholds are settings; defaults follow the 5-minute refresh cycle of the seed):
- fresh:            refreshed less than `open_interest_stale_s` (360 s = 6 min) ago — one refresh may be late;
- stale:            at least 6 min old. Still served (stale-while-revalidate): an old OI figure beats a blank
                    column, and the next refresh replaces it;
- dangerouslyStale: at least `open_interest_dangerously_stale_s` (1800 s = 30 min) old — the refresher has
                    missed several cycles; clients should flag the column. An empty cache is both.

Age is measured on the API's own clock from when the data was *refreshed* here. For the ingest endpoint that is
its `asOf` (capped at now), so a monitor posting old data gets it reported as stale. Updates from the bus are
stamped when they arrive, because a replay's `asOf` runs on the accelerated market clock, not ours.
The response's `asOf` is the newest data time held. Per symbol, an older value never replaces a newer one,
so out-of-order deliveries (at-least-once bus, retrying monitors) can't roll the figures back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.clock import Clock
from marketpulse.marketdata.models import exchange_symbol, normalize_symbol
from marketpulse.marketdata.tables import OpenInterestHistoryRow, OpenInterestRow
from marketpulse.times import parse_time_ms
from marketpulse.wire import camel

FUTURE_TOLERANCE_MS = 60_000  # clock skew tolerated between a monitor and this server
SNAPSHOT_MS = 5 * 60_000  # the refresher's cycle: the history keeps one figure per symbol per 5 minutes

# --- pure core -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenInterestEntry:
    usd: float
    as_of: int  # the data's own time (ms)
    refreshed_at: int  # when it reached us, on our clock (ms); freshness is measured from here


@dataclass(frozen=True, slots=True)
class OpenInterestSnapshot:
    data: dict[str, float]
    as_of: int | None
    stale: bool
    dangerously_stale: bool

    def to_wire(self) -> dict[str, Any]:
        return {camel(name): getattr(self, name) for name in self.__slots__}


class OpenInterestCache:
    def __init__(self, clock: Clock, stale_s: float, dangerously_stale_s: float) -> None:
        self._clock = clock
        self._stale_ms = int(stale_s * 1000)
        self._dangerous_ms = int(dangerously_stale_s * 1000)
        self._entries: dict[str, OpenInterestEntry] = {}

    def update(
        self, usd_by_symbol: Mapping[str, float], as_of: int, *, refreshed_at: int | None = None
    ) -> dict[str, float]:
        """Merge values (keys normalized); returns the values that were taken (newer than what was held)."""
        now = self._clock.now_ms()
        refreshed = min(as_of, now) if refreshed_at is None else refreshed_at
        taken: dict[str, float] = {}
        for raw, usd in usd_by_symbol.items():
            symbol = normalize_symbol(raw)
            held = self._entries.get(symbol)
            if held is not None and held.as_of > as_of:
                continue
            # The same figures arriving again (bus echo of an ingest, redelivery) are not a refresh.
            since = min(held.refreshed_at, refreshed) if held is not None and held.as_of == as_of else refreshed
            self._entries[symbol] = OpenInterestEntry(float(usd), as_of, since)
            taken[symbol] = float(usd)
        return taken

    def load(self, rows: Iterable[tuple[str, float, int]]) -> None:
        """Seed from storage: (symbol, usd, as_of); their age counts from as_of (we can't know better)."""
        for symbol, usd, as_of in rows:
            self.update({symbol: usd}, as_of)

    def get(self, symbol: str) -> float | None:
        entry = self._entries.get(symbol)
        return None if entry is None else entry.usd

    def values(self) -> dict[str, float]:
        return {symbol: e.usd for symbol, e in self._entries.items()}

    def snapshot(self) -> OpenInterestSnapshot:
        if not self._entries:
            return OpenInterestSnapshot({}, None, stale=True, dangerously_stale=True)
        newest_refresh = max(e.refreshed_at for e in self._entries.values())
        age = self._clock.now_ms() - newest_refresh
        return OpenInterestSnapshot(
            data=self.values(),
            as_of=max(e.as_of for e in self._entries.values()),
            stale=age >= self._stale_ms,
            dangerously_stale=age >= self._dangerous_ms,
        )


class InvalidOpenInterest(ValueError):
    """An ingest body that can't be taken; `errors` are FastAPI-style field errors (loc, msg, type)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


def parse_ingest_body(raw: bytes, now_ms: int, window_ms: int | None = None) -> tuple[dict[str, float], int]:
    """(normalized values, asOf) from an ingest body, or InvalidOpenInterest listing every bad field.

    `asOf` must lie within `window_ms` (PULSE_INGEST_TIME_WINDOW_S) before `now_ms` and FUTURE_TOLERANCE_MS after."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidOpenInterest([{"loc": ["body"], "msg": f"invalid JSON: {exc}", "type": "json_invalid"}]) from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        missing = isinstance(body, dict) and "data" not in body
        raise InvalidOpenInterest([{"loc": ["body", "data"], "msg": "an object of symbol → USD is required",
                                    "type": "missing" if missing else "dict_type"}])
    values, errors = validate_usd_values(body["data"])
    as_of = body.get("asOf")
    if as_of is None:
        as_of = now_ms
    elif problem := _as_of_problem(as_of):
        errors.append({"loc": ["body", "asOf"], "msg": problem, "type": "value_error"})
    elif as_of > now_ms + FUTURE_TOLERANCE_MS:
        # A future asOf would read as fresh for as long as our clock takes to catch up with it.
        errors.append({"loc": ["body", "asOf"], "msg": "is in the future", "type": "value_error"})
    elif window_ms is not None and as_of < now_ms - window_ms:
        # Old figures would be stored as the latest known and shown (as stale) until the next refresh.
        errors.append({"loc": ["body", "asOf"], "msg": f"is older than the ingest window of {window_ms // 1000} s "
                       f"before the clock ({now_ms}); see PULSE_INGEST_TIME_WINDOW_S", "type": "value_error"})
    if errors:
        raise InvalidOpenInterest(errors)
    return values, as_of


def _as_of_problem(value: Any) -> str:
    """'' when `value` is integer epoch ms in the one accepted range (`marketpulse.times`), else why not."""
    if not isinstance(value, int) or isinstance(value, bool):
        return "epoch milliseconds (an integer)"
    try:
        parse_time_ms(value)
    except ValueError as exc:
        return str(exc)
    return ""


def validate_usd_values(data: Mapping[str, Any]) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Finite non-negative numbers only; returns (normalized values, field-level errors naming each bad key)."""
    values: dict[str, float] = {}
    errors: list[dict[str, Any]] = []
    for key, value in data.items():
        try:
            symbol = exchange_symbol(key) if isinstance(key, str) else ""
        except ValueError as exc:
            errors.append(_error(key, value, str(exc)))
            continue
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
        if not symbol:
            errors.append(_error(key, value, "symbol must be text"))
        elif not ok:
            errors.append(_error(key, value, "must be a finite, non-negative number of USD"))
        else:
            values[symbol] = float(value)
    return values, errors


def _error(key: Any, value: Any, msg: str) -> dict[str, Any]:
    shown = value if isinstance(value, int | float | str | bool | None) else type(value).__name__
    return {"loc": ["body", "data", key], "msg": msg, "type": "value_error", "input": shown}


# --- storage -------------------------------------------------------------------------------------------------


async def load_open_interest(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, float, int]]:
    async with sessions() as session:
        result = await session.execute(select(OpenInterestRow.symbol, OpenInterestRow.usd, OpenInterestRow.as_of))
        return [(s, u, a) for s, u, a in result.all()]


async def save_open_interest(
    sessions: async_sessionmaker[AsyncSession], values: Mapping[str, float], as_of: int
) -> None:
    """Upsert, newer-wins per symbol (same rule as the cache), on SQLite and PostgreSQL alike; the same figures go
    into the history under their 5-minute snapshot (newer-wins inside it), in the same transaction."""
    if not values:
        return
    rows = [{"symbol": s, "usd": u, "as_of": as_of} for s, u in values.items()]
    snapshot = as_of // SNAPSHOT_MS * SNAPSHOT_MS
    async with sessions.begin() as session:
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        stmt = insert(OpenInterestRow).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=[OpenInterestRow.symbol],
            set_={"usd": stmt.excluded.usd, "as_of": stmt.excluded.as_of},
            where=OpenInterestRow.as_of <= stmt.excluded.as_of,
        )
        await session.execute(stmt)
        history = insert(OpenInterestHistoryRow).values([dict(r, time=snapshot) for r in rows])
        history = history.on_conflict_do_update(
            index_elements=[OpenInterestHistoryRow.symbol, OpenInterestHistoryRow.time],
            set_={"usd": history.excluded.usd, "as_of": history.excluded.as_of},
            where=OpenInterestHistoryRow.as_of <= history.excluded.as_of,
        )
        await session.execute(history)


async def load_open_interest_history(
    sessions: async_sessionmaker[AsyncSession], symbol: str, step_ms: int, start_ms: int | None, end_ms: int | None,
    limit: int,
) -> list[tuple[int, float]]:
    """(bucket time, USD) oldest first, the newest `limit` buckets in [start_ms, end_ms): at 5 minutes each stored
    snapshot, at coarser steps the last snapshot of each bucket (open interest is a level, not a flow)."""
    query = select(OpenInterestHistoryRow.time, OpenInterestHistoryRow.usd).where(
        OpenInterestHistoryRow.symbol == symbol)
    if start_ms is not None:
        query = query.where(OpenInterestHistoryRow.time >= start_ms)
    if end_ms is not None:
        query = query.where(OpenInterestHistoryRow.time < end_ms)
    async with sessions() as session:
        rows = (await session.execute(query.order_by(OpenInterestHistoryRow.time))).all()
    return last_per_bucket([(t, u) for t, u in rows], step_ms)[-limit:]


def last_per_bucket(points: list[tuple[int, float]], step_ms: int) -> list[tuple[int, float]]:
    """Pure: time-sorted (time, value) → the last value of each `step_ms` bucket, stamped at the bucket start."""
    out: dict[int, float] = {}
    for t, value in points:
        out[t // step_ms * step_ms] = value
    return list(out.items())


async def has_open_interest_history(sessions: async_sessionmaker[AsyncSession], symbol: str) -> bool:
    async with sessions() as session:
        query = select(OpenInterestHistoryRow.time).where(OpenInterestHistoryRow.symbol == symbol).limit(1)
        return (await session.scalar(query)) is not None


