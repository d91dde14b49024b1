"""Error bodies: always renderable JSON, never more than a short excerpt of what the client sent.

FastAPI's stock handlers echo each bad value whole (a 1 MB string comes back in the 422) and fail with a 500 on a
NaN input, which JSON can't carry. These handlers keep FastAPI's shapes (`{"detail": [{"loc", "msg", "type",
"input", "ctx"}]}` and `{"detail": …}`) but clip every string, spell non-finite numbers as text, and cut long
lists. A database refusing a value (`DataError`: too long, NUL character, out of range) is the client's bad
input, not a server fault, on SQLite (see `storage.guards`) as on PostgreSQL: 422.
"""

from __future__ import annotations

import json
import math
from typing import Any

import structlog
from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException

from marketpulse.credits.core import InsufficientCredits
from marketpulse.ratelimit.core import is_limited

log = structlog.get_logger(__name__)

EXCERPT_CHARS = 100  # of a bad input echoed back
TEXT_CHARS = 300  # of any other string in an error body (messages, locations), which may quote the input
MAX_ITEMS = 50  # errors (or list items) in one body; the rest are counted, not listed
# Fields whose value is a credential: an error about one names the field but never shows what was sent.
SECRET_FIELDS = frozenset({"password", "current_password", "new_password", "token", "refresh_token"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(DBAPIError, _data_error)  # type: ignore[arg-type]
    app.add_exception_handler(InsufficientCredits, _credits_required)  # type: ignore[arg-type]


async def _credits_required(_: Request, exc: InsufficientCredits) -> JSONResponse:
    """402 for any action that needs more credits than the caller has: what it costs and what they have."""
    return JSONResponse({"detail": {"reason": "insufficient_credits", "message": str(exc), "balance": exc.balance,
                                    "cost": exc.cost}}, status_code=status.HTTP_402_PAYMENT_REQUIRED)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": render_errors(list(exc.errors()))},
                        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    detail = exc.detail
    if isinstance(detail, list) and all(isinstance(e, dict) and "loc" in e for e in detail):
        detail = render_errors(detail)
    else:
        detail = clip(detail)
    return await http_exception_handler(request, HTTPException(exc.status_code, detail, exc.headers))


async def _data_error(_: Request, exc: DBAPIError) -> JSONResponse:
    if not is_data_error(exc):
        raise exc  # a real server fault: the 500 path logs it
    reason = str(exc.orig).splitlines()[0] if exc.orig is not None else "invalid value"
    log.warning("database refused a request's value", reason=reason[:TEXT_CHARS])
    error = {"type": "value_error", "loc": ["body"], "msg": f"a value can't be stored: {reason}"}
    return JSONResponse({"detail": render_errors([error])}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def is_data_error(exc: DBAPIError) -> bool:
    """The database refused a value (SQLSTATE class 22, "data exception"), as opposed to failing.

    SQLAlchemy's asyncpg dialect reports PostgreSQL's data exceptions as a plain DBAPIError; the original asyncpg
    error (its cause) carries the SQLSTATE, and asyncpg's client-side refusals (an int beyond int64) are ValueErrors.
    """
    if isinstance(exc, DataError):
        return True
    cause = getattr(exc.orig, "__cause__", None)
    return str(getattr(cause, "sqlstate", "")).startswith("22") or isinstance(cause, ValueError)


def render_errors(errors: list[Any]) -> list[dict[str, Any]]:
    """Field errors as JSON-safe dicts: `input` cut to an excerpt, `ctx` values made plain, the list capped."""
    out = [_render_error(e) for e in errors[:MAX_ITEMS]]
    if len(errors) > MAX_ITEMS:
        out.append({"type": "too_many_errors", "loc": [], "msg": f"{len(errors) - MAX_ITEMS} more errors not shown"})
    return out


def _render_error(error: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: clip(v) for k, v in error.items() if k not in ("input", "ctx", "url")}
    if "input" in error:
        secret = any(part in SECRET_FIELDS for part in error.get("loc", ()))
        out["input"] = "(hidden)" if secret else excerpt(error["input"])
    if error.get("ctx"):
        out["ctx"] = {str(k): clip(v if isinstance(v, int | float | str | bool | None) else str(v))
                      for k, v in dict(error["ctx"]).items()}
    return out


def excerpt(value: Any) -> Any:
    """A bad input as echoed back: itself when short, else the start of its JSON text and '…'."""
    safe = clip(_plain(value))
    text = json.dumps(safe, ensure_ascii=False)
    if len(text) <= EXCERPT_CHARS:
        return safe
    return value[:EXCERPT_CHARS] + "…" if isinstance(value, str) else text[:EXCERPT_CHARS] + "…"


def _plain(value: Any) -> Any:
    """JSON types only (bytes, models, dates… made plain); whatever can't be is shown by its text."""
    try:
        return jsonable_encoder(value)
    except Exception:
        return str(value)


def clip(value: Any, limit: int = TEXT_CHARS) -> Any:
    """JSON-safe copy: strings cut to `limit`, non-finite floats as text, lists/objects capped at MAX_ITEMS."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if isinstance(value, bytes):
        return clip(value.decode("utf-8", "replace"), limit)
    if isinstance(value, dict):
        return {clip(str(k), limit): clip(v, limit) for k, v in list(value.items())[:MAX_ITEMS]}
    if isinstance(value, list | tuple):
        return [clip(v, limit) for v in value[:MAX_ITEMS]]
    return value


# --- OpenAPI: the error answers every route can give --------------------------------------------------------------
RATE_LIMIT_HEADERS = {
    "Retry-After": {"description": "Seconds until a request can succeed again", "schema": {"type": "integer"}},
    "X-RateLimit-Limit": {"description": "Requests allowed in the window", "schema": {"type": "integer"}},
    "X-RateLimit-Remaining": {"description": "Requests left in the window", "schema": {"type": "integer"}},
    "X-RateLimit-Reset": {"description": "Epoch second the window starts over", "schema": {"type": "integer"}},
}


class ErrorOut(BaseModel):
    """`{"detail": …}`: a message, or an object with a `reason` (409, 429), or a list of field errors (422)."""

    detail: Any


def error_responses(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=` for the errors it raises itself: `error_responses({404: "No such order"})`."""
    return {code: {"description": text, "model": ErrorOut} for code, text in descriptions.items()}


def document_app_errors(app: FastAPI) -> None:
    """Add to the OpenAPI document the answers the app gives on any route, whatever the route says:
    413 past the body limit, 400 for a body FastAPI can't decode (not UTF-8), 422 for unstorable values, 429 past
    the plan's rate limit (`marketpulse.ratelimit`)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        error = {"schema": {"$ref": "#/components/schemas/ErrorOut"}}
        schema.setdefault("components", {}).setdefault("schemas", {})["ErrorOut"] = ErrorOut.model_json_schema()
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if is_limited(path):
                    responses.setdefault("429", {
                        "description": "Past the caller's plan's API rate limit (or a route's own limit): wait "
                                       "`Retry-After` seconds", "content": {"application/json": error},
                        "headers": RATE_LIMIT_HEADERS})
                if "requestBody" in operation:
                    # JSON from the app's handler; plain text when the server refuses before the route runs.
                    responses.setdefault("413", {"description": "Body over PULSE_MAX_BODY_BYTES", "content": {
                        "application/json": error, "text/plain": {"schema": {"type": "string"}}}})
                    responses.setdefault("400", {"description": "Body that can't be decoded (not UTF-8)",
                                                 "content": {"application/json": error}})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
