"""The one text → epoch-ms parser: what it accepts, its one rounding rule, its range, its refusals."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from marketpulse.times import EARLIEST_MS, LATEST_MS, TimeParseError, ms_datetime, parse_time_ms

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


@pytest.mark.parametrize(("text", "ms"), [
    ("2024-01-01", T0),
    ("2024-01-01T00:00", T0),
    ("2024-01-01 00:00:00", T0),
    ("2024-01-01T00:00:00Z", T0),
    ("2024-01-01T02:00:00+02:00", T0),
    (" 2024-01-01T00:00:00.000Z ", T0),
    (str(T0), T0),
    (T0, T0),
    (float(T0), T0),
    (date(2024, 1, 1), T0),
    (datetime(2024, 1, 1, tzinfo=UTC), T0),
])
def test_accepted_forms(text: object, ms: int) -> None:
    assert parse_time_ms(text) == ms


def test_one_rounding_rule_floors_to_the_millisecond() -> None:
    assert parse_time_ms("2024-01-01T00:00:00.0019Z") == T0 + 1
    assert parse_time_ms("2024-01-01T00:00:00.9999Z") == T0 + 999
    assert parse_time_ms(ms_datetime(T0 + 123)) == T0 + 123


@pytest.mark.parametrize(("bad", "says"), [
    ("99999999999999999999", "outside 2000-01-01"),
    ("1704067200", "seconds sent by mistake"),  # seconds, not ms
    (str(EARLIEST_MS - 1), "outside"),
    (LATEST_MS, "outside"),
    ("9999-12-31", "outside"),
    ("1e309", "ISO 8601"),
    (float("inf"), "ISO 8601"),
    (float("nan"), "ISO 8601"),
    (1.5e12 + 0.5, "ISO 8601"),
    ("-1704067200000", "ISO 8601"),
    ("yesterday", "ISO 8601"),
    ("2024-13-01", "ISO 8601"),
    ("", "ISO 8601"),
    (True, "boolean"),
    (None, "NoneType"),
    ("x" * 10_000, "…"),
])
def test_refused_with_a_message_saying_what_is_accepted(bad: object, says: str) -> None:
    with pytest.raises(TimeParseError, match=says) as exc:
        parse_time_ms(bad)
    assert len(str(exc.value)) < 200  # never echoes a whole body back
