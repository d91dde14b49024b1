"""When a notification goes out (pure): the owner's plan cadence, quiet hours and flood limit.

A dispatcher decides each notification's cadence once, when it first claims it (`decide`, on its injected clock):

- **now**: instant plans, outside quiet hours, under the flood limit;
- **hold** until `release_ms`: the plan's wall-clock batch (`alert_batch_minutes`: the next UTC minute divisible by
  it, :00/:05/… or :00/:15/…), the end of the owner's quiet hours (in their time zone; then on a batch boundary for
  batched plans), or, past the flood limit on an instant plan, the end of the current minute. Every notification of
  a destination held for the same release time is delivered as ONE digest message, with one idempotency key and one
  charge (`digest_idempotency_key`);
- **drop**: a low-priority alert in quiet hours when the owner chose `drop` (the notification is `skipped`,
  reason `quiet_hours`).

High-priority alerts break through quiet hours (they follow the plan's cadence alone). In-app notifications are
delivered at once whatever the cadence: they cost nothing, make no sound, and the notification centre is where a
user looks for what happened (the bell's count is live on every plan).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

MINUTE_MS = 60_000
NOW, HOLD, DROP = "now", "hold", "drop"
QUIET_HOURS = "quiet_hours"  # a dropped notification's reason
EXEMPT_CHANNELS = frozenset({"in_app"})
DIGEST_LINES = 30  # alerts listed in one digest's text; the rest are counted


@dataclass(frozen=True)
class Policy:
    """What decides an owner's cadence: their plan's batch and their notification preferences."""

    batch_minutes: int = 0  # 0: instant
    time_zone: str = "UTC"
    quiet_hours_start: str | None = None  # HH:MM local
    quiet_hours_end: str | None = None
    quiet_hours_low_priority: str = "hold"  # hold | drop
    flood_limit_per_minute: int = 0  # 0: none


@dataclass(frozen=True)
class Decision:
    kind: str  # now | hold | drop
    release_ms: int | None = None  # for hold

    @property
    def digest_key(self) -> str | None:
        return None if self.release_ms is None else str(self.release_ms)


def window_start_ms(now_ms: int) -> int:
    """The start of the wall-clock minute the flood limit counts in."""
    return now_ms - now_ms % MINUTE_MS


def next_boundary_ms(batch_minutes: int, after_ms: int, *, inclusive: bool = False) -> int:
    """The first UTC instant on a `batch_minutes` boundary after `after_ms` (at or after it when `inclusive`)."""
    step = batch_minutes * MINUTE_MS
    if inclusive and after_ms % step == 0:
        return after_ms
    return after_ms - after_ms % step + step


def _minutes(hh_mm: str) -> int:
    hours, minutes = hh_mm.split(":")
    return int(hours) * 60 + int(minutes)


def quiet_hours_end_ms(policy: Policy, now_ms: int) -> int | None:
    """When the quiet hours `now_ms` falls in end (epoch ms), or None outside them (or with none set)."""
    if policy.quiet_hours_start is None or policy.quiet_hours_end is None:
        return None
    zone = ZoneInfo(policy.time_zone)
    local = datetime.fromtimestamp(now_ms / 1000, zone)
    minute = local.hour * 60 + local.minute
    start, end = _minutes(policy.quiet_hours_start), _minutes(policy.quiet_hours_end)
    inside = start <= minute < end if start < end else (minute >= start or minute < end)
    if not inside:
        return None
    day = local.date() if minute < end else local.date() + timedelta(days=1)
    ends = datetime(day.year, day.month, day.day, end // 60, end % 60, tzinfo=zone)
    return int(ends.timestamp() * 1000)


def decide(policy: Policy, priority: str, now_ms: int, sent_this_minute: int) -> Decision:
    """The cadence of one notification first claimed at `now_ms`; `sent_this_minute` counts the owner's
    notifications already decided `now` in this wall-clock minute (the flood limit's count)."""
    quiet_end = None if priority == "high" else quiet_hours_end_ms(policy, now_ms)
    if quiet_end is not None:
        if priority == "low" and policy.quiet_hours_low_priority == DROP:
            return Decision(DROP)
        if policy.batch_minutes:
            quiet_end = next_boundary_ms(policy.batch_minutes, quiet_end, inclusive=True)
        return Decision(HOLD, quiet_end)
    if policy.batch_minutes:
        return Decision(HOLD, next_boundary_ms(policy.batch_minutes, now_ms))
    if policy.flood_limit_per_minute and sent_this_minute >= policy.flood_limit_per_minute:
        return Decision(HOLD, window_start_ms(now_ms) + MINUTE_MS)
    return Decision(NOW)


def digest_idempotency_key(destination_id: str, digest_key: str) -> str:
    """The key a digest's receiver sees: one per destination and release time, the same on every attempt."""
    return hashlib.sha256(f"digest\x1f{destination_id}\x1f{digest_key}".encode()).hexdigest()


def digest_message(messages: list[dict[str, Any]], release_ms: int) -> dict[str, Any]:
    """One message for a digest's notifications (in the order they matched); one alone is sent as it is."""
    if len(messages) == 1:
        return messages[0]
    lines = [f"• {m.get('title') or 'alert'}: {m.get('text') or ''}".rstrip(": ") for m in messages[:DIGEST_LINES]]
    if len(messages) > DIGEST_LINES:
        lines.append(f"… and {len(messages) - DIGEST_LINES} more")
    symbols = {m.get("symbol") for m in messages}
    return {"title": f"{len(messages)} alerts", "text": "\n".join(lines), "kind": "digest",
            "symbol": symbols.pop() if len(symbols) == 1 else None, "time_ms": release_ms,
            "items": [{"title": m.get("title"), "text": m.get("text"), "symbol": m.get("symbol"),
                       "kind": m.get("kind")} for m in messages]}
