"""SQLite refuses what PostgreSQL refuses: the same statements fail as a data error on both engines."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from marketpulse.api.errors import is_data_error
from marketpulse.marketdata.open_interest import save_open_interest
from marketpulse.marketdata.tables import OpenInterestRow
from marketpulse.runtime import Runtime


@pytest.mark.parametrize(
    ("values", "as_of"),
    [
        ({"A" * 65: 1.0}, 1),  # VARCHAR(64)
        ({"BTC\x00USDT": 1.0}, 1),  # PostgreSQL text can't hold NUL
        ({"BTCUSDT": 1.0}, 2**63),  # beyond BIGINT
    ],
    ids=["too-long", "nul", "bigint"],
)
async def test_a_value_postgres_refuses_is_refused_on_both(runtime: Runtime, values: dict[str, float],
                                                           as_of: int) -> None:
    with pytest.raises(DBAPIError) as refused:
        await save_open_interest(runtime.sessions, values, as_of)
    assert is_data_error(refused.value)
    async with runtime.sessions() as session:
        assert (await session.execute(select(OpenInterestRow))).all() == []


async def test_what_fits_is_stored_and_a_long_string_may_still_be_compared(runtime: Runtime) -> None:
    await save_open_interest(runtime.sessions, {"A" * 64: 1.0}, 2**63 - 1)
    async with runtime.sessions() as session:
        stored = (await session.execute(select(OpenInterestRow.symbol))).scalars().all()
        # PostgreSQL compares a longer string with a VARCHAR(64) column without complaint: so must SQLite.
        longer = (await session.execute(select(OpenInterestRow).where(OpenInterestRow.symbol == "A" * 65))).all()
    assert stored == ["A" * 64] and longer == []
