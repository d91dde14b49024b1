"""Liveness (the process answers) and readiness (it can reach its database and bus); `platform_health` is the
same checks plus the bus's backlog and dead letters and the process's uptime, for the admin console."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import REGISTRY
from sqlalchemy import text

from marketpulse.bus import topics
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


DEAD_LETTERS_COUNTED = 1_000  # counting stops here: "1000 or more" is all an operator needs to know


async def platform_health(runtime: Runtime) -> dict[str, Any]:
    """Database and bus checks, each consumer group's backlog, dead letters per topic, and process uptime."""
    checks = {"database": await _check(lambda: _database_ok(runtime)), "bus": await _check(runtime.bus.ping)}
    try:
        lags = await asyncio.wait_for(runtime.bus.group_lags(), CHECK_TIMEOUT_S)
    except Exception as exc:  # a slow bus must not take the page down: it shows as unknown
        log.warning("bus lag unavailable", error_type=type(exc).__name__)
        lags = []
    dead = {}
    for topic in topics.ALL:
        try:
            dead[topic.name] = len(await asyncio.wait_for(runtime.bus.dead_letters(topic, DEAD_LETTERS_COUNTED),
                                                          CHECK_TIMEOUT_S))
        except Exception as exc:
            log.warning("dead letters unavailable", topic=topic.name, error_type=type(exc).__name__)
    started = REGISTRY.get_sample_value("process_start_time_seconds")  # Prometheus' process collector (Linux)
    return {
        "status": "ok" if all(v == "ok" for v in checks.values()) else "unavailable",
        "checks": checks,
        "bus_groups": [{"topic": g.topic, "group": g.group, "lag": g.lag, "pending": g.pending} for g in lags],
        "dead_letters": dead,
        "uptime_s": None if started is None else round(time.time() - started, 1),
    }


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
