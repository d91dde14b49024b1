"""Notification preferences: the time zone alerts are shown in, quiet hours (local time, may wrap midnight), what
becomes of low-priority alerts in them (`hold`: delivered when they end, as normal ones are; `drop`: skipped), the
flood limit (alerts a minute delivered one by one; the rest of that minute's arrive as one digest per channel at
its end; 0: no limit) and the channels alerts go to by default. Delivery reads them (`delivery.cadence`).

`check` is the pure core (no I/O): it refuses a bad value naming its field, and a channel the user's plan doesn't
offer (the plan table decides, see `accounts.plans`). The store keeps one row per user; absent means defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from zoneinfo import available_timezones

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.accounts.plans import ALL_CHANNELS, Plan
from marketpulse.accounts.tables import NotificationPreferencesRow
from marketpulse.clock import Clock

HH_MM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
DEFAULT_TIME_ZONE = "UTC"
DEFAULT_CHANNELS = ("email",)
QUIET_LOW_PRIORITY = ("hold", "drop")
DEFAULT_FLOOD_LIMIT = 20  # notifications a minute, one by one
MAX_FLOOD_LIMIT = 1000


@dataclass(frozen=True)
class Preferences:
    time_zone: str = DEFAULT_TIME_ZONE
    quiet_hours_start: str | None = None
    quiet_hours_end: str | None = None
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    quiet_hours_low_priority: str = "hold"  # hold | drop
    flood_limit_per_minute: int = DEFAULT_FLOOD_LIMIT  # 0: none


class BadPreference(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check(prefs: Preferences, plan: Plan) -> Preferences:
    """`prefs` if every field is acceptable for a user on `plan`, else BadPreference naming the first bad field."""
    if prefs.time_zone not in _time_zones():
        raise BadPreference("time_zone", f"unknown time zone {prefs.time_zone!r}: an IANA name such as Europe/Berlin")
    for field, value in (("quiet_hours_start", prefs.quiet_hours_start), ("quiet_hours_end", prefs.quiet_hours_end)):
        if value is not None and not HH_MM.match(value):
            raise BadPreference(field, f"{value!r} is not a time of day as HH:MM (00:00 to 23:59)")
    if (prefs.quiet_hours_start is None) != (prefs.quiet_hours_end is None):
        raise BadPreference("quiet_hours_end", "quiet hours need both a start and an end (or neither)")
    if prefs.quiet_hours_start is not None and prefs.quiet_hours_start == prefs.quiet_hours_end:
        raise BadPreference("quiet_hours_end", "quiet hours must end at another time than they start")
    if prefs.quiet_hours_low_priority not in QUIET_LOW_PRIORITY:
        raise BadPreference("quiet_hours_low_priority", "what becomes of low-priority alerts in quiet hours: "
                                                        "'hold' (delivered when they end) or 'drop'")
    if not 0 <= prefs.flood_limit_per_minute <= MAX_FLOOD_LIMIT:
        raise BadPreference("flood_limit_per_minute", f"between 0 (no limit) and {MAX_FLOOD_LIMIT} notifications a "
                                                      "minute")
    unknown = [c for c in prefs.channels if c not in ALL_CHANNELS]
    if unknown:
        raise BadPreference("channels", f"unknown channel {unknown[0]!r}: one of {', '.join(ALL_CHANNELS)}")
    if len(set(prefs.channels)) != len(prefs.channels):
        raise BadPreference("channels", "a channel is listed twice")
    outside = [c for c in prefs.channels if c not in plan.alert_channels]
    if outside:
        raise BadPreference("channels", f"the {plan.title} plan doesn't deliver by {outside[0]}: it offers "
                                        f"{', '.join(plan.alert_channels)}")
    return prefs


@cache  # reading the tz database takes a while: once per process
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones() | {DEFAULT_TIME_ZONE})


def from_row(row: NotificationPreferencesRow) -> Preferences:
    return Preferences(row.time_zone, row.quiet_hours_start, row.quiet_hours_end,
                       tuple(c for c in row.channels.split(",") if c), row.quiet_hours_low_priority,
                       row.flood_limit_per_minute)


class PreferencesStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    async def get(self, user_id: str) -> Preferences:
        """The user's saved preferences, or the defaults when none were saved."""
        async with self.sessions() as s:
            row = await s.get(NotificationPreferencesRow, user_id)
        if row is None:
            return Preferences()
        return from_row(row)

    async def put(self, user_id: str, prefs: Preferences) -> Preferences:
        """Save checked preferences for the user (replacing what was there)."""
        async with self.sessions() as s:
            row = (await s.execute(select(NotificationPreferencesRow).where(
                NotificationPreferencesRow.owner_id == user_id))).scalar_one_or_none()
            if row is None:
                row = NotificationPreferencesRow(owner_id=user_id)
                s.add(row)
            row.time_zone = prefs.time_zone
            row.quiet_hours_start = prefs.quiet_hours_start
            row.quiet_hours_end = prefs.quiet_hours_end
            row.channels = ",".join(prefs.channels)
            row.quiet_hours_low_priority = prefs.quiet_hours_low_priority
            row.flood_limit_per_minute = prefs.flood_limit_per_minute
            row.updated_at_ms = self.clock.now_ms()
            await s.commit()
        return prefs
