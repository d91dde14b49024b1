"""Liveness (the process answers) and readiness (it can reach its database and bus)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from marketpulse.runtime import Runtime

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/health", tags=["health"])

CHECK_TIMEOUT_S = 3.0  # a hung dependency must fail the probe, not hang it


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "A dependency failed; `checks` says which"}})
async def ready(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    checks = {
        "database": await _check(lambda: _database_ok(runtime)),
        "bus": await _check(runtime.bus.ping),
    }
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)


async def _database_ok(runtime: Runtime) -> bool:
    async with runtime.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


async def _check(probe: Callable[[], Awaitable[Any]]) -> str:
    """'ok' or a short reason. Only the exception's type is returned: messages can carry URLs with passwords."""
    try:
        result = await asyncio.wait_for(probe(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return "timeout"
    except Exception as exc:
        log.warning("readiness check failed", error_type=type(exc).__name__)
        return f"error: {type(exc).__name__}"
    return "ok" if result else "failed"
