"""Text → epoch milliseconds: the one parser behind every `from`/`to`/`since`/`timestamp` the platform accepts.

Accepted: integer epoch ms (an int, an integral float such as JSON's 1.7e12, or a string of digits), an ISO 8601
date (`2024-01-01`, UTC midnight) or date-time (`2024-01-01T12:30`, `…Z`, `…+02:00`; naive ones are UTC).
One rounding rule: a time finer than a millisecond is floored to the millisecond (towards the past), so a time
and its own ms value always parse to the same number. The result must lie in [2000-01-01, 2100-01-01) UTC: an
earlier number is almost surely seconds sent as milliseconds, a later one a typo; both are refused, as are
booleans, fractional milliseconds and anything else, with a message saying what is accepted.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

EARLIEST_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
LATEST_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z (exclusive)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_ACCEPTED = "use an ISO 8601 date or date-time, UTC unless it says, or integer epoch milliseconds"


class TimeParseError(ValueError):
    pass


def parse_time_ms(value: Any) -> int:
    """Epoch ms from `value` (see the module docstring); TimeParseError (a ValueError) when it isn't one."""
    ms = _to_ms(value)
    if not EARLIEST_MS <= ms < LATEST_MS:
        raise TimeParseError(
            f"{value!r} is outside 2000-01-01 … 2100-01-01 UTC as epoch milliseconds (seconds sent by mistake?)"
        )
    return ms


def _to_ms(value: Any) -> int:
    if isinstance(value, bool):
        raise TimeParseError(f"a boolean is not a time ({_ACCEPTED})")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():  # also NaN and ±inf
            raise TimeParseError(f"{value!r} is not a time ({_ACCEPTED})")
        return int(value)
    if isinstance(value, datetime):
        return datetime_ms(value)
    if isinstance(value, date):
        return datetime_ms(datetime(value.year, value.month, value.day))
    if isinstance(value, str):
        return _text_ms(value)
    raise TimeParseError(f"a {type(value).__name__} is not a time ({_ACCEPTED})")


def _text_ms(text: str) -> int:
    stripped = text.strip()
    if stripped.isascii() and stripped.isdigit():
        return int(stripped)
    if len(stripped) > 40:  # no ISO time is this long; don't echo a whole body back
        raise TimeParseError(f"{stripped[:40]!r}… is not a time ({_ACCEPTED})")
    try:
        return datetime_ms(datetime.fromisoformat(stripped))
    except ValueError:
        raise TimeParseError(f"{text!r} is not a time ({_ACCEPTED})") from None


def datetime_ms(value: datetime) -> int:
    """Epoch ms of a datetime (naive = UTC), floored to the millisecond."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return (aware - _EPOCH) // _ONE_MS


def ms_datetime(ms: int) -> datetime:
    """The aware UTC datetime of epoch ms (exact: no float round trip)."""
    return _EPOCH + ms * _ONE_MS


def utc_text(ms: int | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Epoch ms as UTC text for people (CLI tables and messages); "—" for no time."""
    return "—" if ms is None else ms_datetime(ms).strftime(fmt)


# A pydantic field type: ISO text or epoch ms in, int epoch ms out; a bad value is a 422 naming the field.
# OpenAPI documents the integer form with its bounds (ISO text is accepted too), so clients and fuzzers know them.
EpochMs = Annotated[int, BeforeValidator(parse_time_ms),
                    WithJsonSchema({"type": "integer", "minimum": EARLIEST_MS, "maximum": LATEST_MS - 1})]
