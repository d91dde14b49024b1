"""Alert times as integer epoch milliseconds, like every other time the platform stores.

`volume_alerts.timestamp` and `hour_timestamp` were `DateTime(timezone=True)`; every reader converted them back to
ms (through float seconds). They become BIGINT epoch ms; existing rows are converted exactly (integer arithmetic on
the stored datetime, naive values read as UTC, as SQLite hands them back). The unique constraint and the indexes
on them are rebuilt on the new columns.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_UNIQUE = "uq_volume_alerts_symbol_hour_type"
_INDEXES = {"ix_volume_alerts_timestamp": ["timestamp"], "ix_volume_alerts_symbol_timestamp": ["symbol", "timestamp"]}


def upgrade() -> None:
    _swap(to_ms=True)


def downgrade() -> None:
    _swap(to_ms=False)


def _swap(*, to_ms: bool) -> None:
    """Add the columns in the new type, copy every row across, then put them in the old ones' place."""
    old_type = sa.DateTime(timezone=True) if to_ms else sa.BigInteger()
    new_type = sa.BigInteger() if to_ms else sa.DateTime(timezone=True)
    with op.batch_alter_table("volume_alerts") as batch:
        batch.add_column(sa.Column("timestamp_new", new_type, nullable=True))
        batch.add_column(sa.Column("hour_timestamp_new", new_type, nullable=True))
    _copy(old_type, new_type, _to_ms if to_ms else _to_datetime)
    for name in _INDEXES:
        op.drop_index(name, table_name="volume_alerts")
    with op.batch_alter_table("volume_alerts") as batch:
        batch.drop_constraint(_UNIQUE, type_="unique")
        batch.drop_column("timestamp")
        batch.drop_column("hour_timestamp")
    with op.batch_alter_table("volume_alerts") as batch:
        for name in ("timestamp", "hour_timestamp"):
            batch.alter_column(f"{name}_new", new_column_name=name, existing_type=new_type, nullable=False)
    with op.batch_alter_table("volume_alerts") as batch:  # after the rename: SQLite's copy must see the new names
        batch.create_unique_constraint(_UNIQUE, ["symbol", "hour_timestamp", "alert_type"])
    for name, columns in _INDEXES.items():
        op.create_index(name, "volume_alerts", columns)


def _copy(old_type: sa.types.TypeEngine, new_type: sa.types.TypeEngine, convert: object) -> None:
    table = sa.table(
        "volume_alerts", sa.column("id", sa.String()), sa.column("timestamp", old_type),
        sa.column("hour_timestamp", old_type), sa.column("timestamp_new", new_type),
        sa.column("hour_timestamp_new", new_type),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(table.c.id, table.c.timestamp, table.c.hour_timestamp)).all()
    if not rows:
        return
    assert callable(convert)
    update = (
        table.update().where(table.c.id == sa.bindparam("row_id"))
        .values(timestamp_new=sa.bindparam("ts"), hour_timestamp_new=sa.bindparam("hour"))
    )
    bind.execute(update, [{"row_id": i, "ts": convert(ts), "hour": convert(hour)} for i, ts, hour in rows])


def _to_ms(value: datetime) -> int:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return (aware - _EPOCH) // _MS


def _to_datetime(ms: int) -> datetime:
    return _EPOCH + int(ms) * _MS
