"""The pure rules of API rate limiting: which paths count, which windows a plan allows, and what a response says.

Windows come from the plan table only (`api_requests_per_minute`, `api_requests_per_day`); anonymous callers get
the lowest plan's. The response headers describe the window closest to refusing (the one that refused, if any):
`X-RateLimit-Limit` its size, `X-RateLimit-Remaining` what is left in it, `X-RateLimit-Reset` the epoch second it
starts over (as GitHub's API does); a refusal adds `Retry-After` in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from marketpulse.accounts.plans import PLANS, Plan

# Served without counting: files the pages need, the probes and scrapes operators run, and Socket.IO (which has a
# connection per browser, not a request per action). Webhooks come from a few shared senders (TradingView's four
# addresses) and are limited per signal config instead (PULSE_WEBHOOK_RATE_PER_MINUTE).
EXEMPT_PREFIXES = ("/static/", "/vendor/", "/health/", "/socket.io", "/webhook/")
# Stripe's webhook: signed (so not anonymous traffic), sent from a few addresses in bursts; a 429 would only make
# Stripe back off and deliver plan changes late.
EXEMPT_PATHS = frozenset({"/health", "/metrics", "/favicon.ico", "/api/v1/payments/webhook"})


@dataclass(frozen=True)
class Window:
    amount: int  # requests allowed
    seconds: int  # per this many seconds


@dataclass(frozen=True)
class WindowState:
    window: Window
    allowed: bool  # this request fitted in the window
    remaining: int
    reset_at_s: float  # epoch seconds when the window starts over


def is_limited(path: str) -> bool:
    return path not in EXEMPT_PATHS and not path.startswith(EXEMPT_PREFIXES)


def plan_windows(plan: Plan) -> tuple[Window, ...]:
    windows = [Window(plan.api_requests_per_minute, 60)]
    if plan.api_requests_per_day is not None:
        windows.append(Window(plan.api_requests_per_day, 86_400))
    return tuple(windows)


def anonymous_plan() -> Plan:
    """The lowest plan: the one allowing the fewest requests a minute."""
    return min(PLANS, key=lambda p: (p.api_requests_per_minute, p.api_requests_per_day or math.inf))


def headline(states: Sequence[WindowState]) -> WindowState:
    """The window the headers describe: the first that refused, else the one with the fewest requests left."""
    refused = [s for s in states if not s.allowed]
    return refused[0] if refused else min(states, key=lambda s: (s.remaining, s.reset_at_s))


def rate_headers(state: WindowState, now_s: float) -> dict[str, str]:
    out = {"X-RateLimit-Limit": str(state.window.amount), "X-RateLimit-Remaining": str(max(0, state.remaining)),
           "X-RateLimit-Reset": str(math.ceil(state.reset_at_s))}
    if not state.allowed:
        out["Retry-After"] = str(retry_after_s(state, now_s))
    return out


def retry_after_s(state: WindowState, now_s: float) -> int:
    return max(1, math.ceil(state.reset_at_s - now_s))


def refusal_body(state: WindowState, now_s: float) -> dict[str, object]:
    retry = retry_after_s(state, now_s)
    return {"detail": {
        "reason": "rate_limited",
        "message": f"rate limit of {state.window.amount} requests per {state.window.seconds} s reached: "
                   f"try again in {retry} s",
        "limit": state.window.amount, "window_s": state.window.seconds, "retry_after_s": retry}}
