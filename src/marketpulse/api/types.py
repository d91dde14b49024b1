"""What every HTTP input must be before it goes further: finite, in range, and storable on both databases.

Python's JSON parser (the one FastAPI uses) accepts `NaN`, `Infinity` and `1e309` (which becomes inf); PostgreSQL
refuses a NUL character in text, a string longer than its VARCHAR and an integer beyond BIGINT, where SQLite
stores all three. So a value that slipped past a route's model either failed with a 500 or was stored on one
engine only. One rule, in three places:

- `check_request_values`, an app-wide dependency, refuses non-finite numbers, NUL characters and integers beyond
  BIGINT in every JSON body, path and query parameter, with a 422 naming where the value sits;
- the annotated types below bound numbers and strings by what the columns and the domain allow; routes use them
  (times: `marketpulse.times.EpochMs`);
- `storage.guards` makes SQLite refuse what PostgreSQL refuses, and the app answers the database's refusal
  (`DataError`, on either engine) with a 422 instead of a 500, for whatever reaches it anyway.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import Field, StringConstraints

MAX_AMOUNT = 1e15  # prices, quantities and cash: products of two (notional, fees) stay far from float overflow
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1  # PostgreSQL BIGINT, SQLite INTEGER
SYMBOL_MAX_LENGTH = 64  # every symbol column is VARCHAR(64)
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text can't hold U+0000; in OpenAPI so clients and fuzzers know it too

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Amount = Annotated[float, Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False)]
NoNul = StringConstraints(pattern=NO_NUL)  # with the column's bound: Annotated[str, Field(max_length=n), NoNul]
Symbol = Annotated[str, StringConstraints(min_length=1, max_length=SYMBOL_MAX_LENGTH, pattern=NO_NUL)]


def unstorable(value: Any, loc: tuple[str | int, ...]) -> Iterator[dict[str, Any]]:
    """A FastAPI-style error for each value under `value` that no store may hold (walks lists and objects)."""
    if isinstance(value, float) and not math.isfinite(value):
        yield _error(loc, "must be a finite number (NaN, Infinity and numbers beyond ±1.8e308 are refused)",
                     "finite_number", str(value))
    elif isinstance(value, int) and not isinstance(value, bool) and not BIGINT_MIN <= value <= BIGINT_MAX:
        yield _error(loc, "is out of range (at most 19 digits)", "int_range", str(value)[:20] + "…")
    elif isinstance(value, str) and "\x00" in value:
        yield _error(loc, "must not contain a NUL character (\\u0000)", "string_nul", value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                yield _error((*loc, key), "key must not contain a NUL character (\\u0000)", "string_nul", key)
            yield from unstorable(item, (*loc, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from unstorable(item, (*loc, i))


def _error(loc: tuple[str | int, ...], msg: str, kind: str, shown: Any) -> dict[str, Any]:
    return {"type": kind, "loc": loc, "msg": msg, "input": shown}


async def check_request_values(request: Request) -> None:
    """App-wide dependency: 422 for unstorable values anywhere in the path, the query or the JSON body.

    It runs after FastAPI parsed the body and before the route's model validates it, so the model never sees a
    NaN (whose 422 couldn't even be rendered as JSON) and loose fields (`dict[str, Any]`) are covered too.
    Routes that read their body by hand (the ingest endpoints) parse it with orjson, which refuses NaN itself.
    """
    errors = [e for name, v in request.path_params.items() for e in unstorable(v, ("path", name))]
    route = request.scope.get("route")
    declared = _query_names(route)  # the rest is ignored by every route, so it can't reach a store
    errors += [e for name, v in request.query_params.multi_items() if name in declared
               for e in unstorable(v, ("query", name))]
    if getattr(route, "body_field", None) is not None and _is_json(request):
        errors += unstorable(await _json_body(request), ("body",))
    if errors:
        raise RequestValidationError(errors)


def _query_names(route: Any) -> set[str]:
    """Query parameters the route or any of its dependencies declares."""
    names: set[str] = set()
    pending = [route.dependant] if isinstance(route, APIRoute) else []
    while pending:
        dependant = pending.pop()
        names.update(p.alias for p in dependant.query_params)
        pending.extend(dependant.dependencies)
    return names


def _is_json(request: Request) -> bool:
    """The rule FastAPI parses bodies by (strict content type): an application/json or …+json body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "application/json" or (content_type.startswith("application/")
                                                   and content_type.endswith("+json"))


async def _json_body(request: Request) -> Any:
    if not await request.body():
        return None
    try:
        return await request.json()  # FastAPI parsed it already: this is the cached value
    except ValueError:
        return None  # FastAPI answered this body's decode error before any dependency ran
