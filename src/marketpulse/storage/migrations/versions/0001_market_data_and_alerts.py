"""Market data (candles, snapshots, open interest) and volume alerts.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "candles",
        sa.Column("exchange", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("interval", sa.String(8), nullable=False),
        sa.Column("open_time", sa.BigInteger(), nullable=False),
        sa.Column("open", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("close", sa.Float(), nullable=False),
        sa.Column("volume", sa.Float(), nullable=False),
        sa.Column("quote_volume", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("exchange", "symbol", "interval", "open_time", name="pk_candles"),
    )
    op.create_index("ix_candles_symbol_time", "candles", ["symbol", "open_time"])
    op.create_table(
        "market_snapshots",
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("change_pct_24h", sa.Float(), nullable=True),
        sa.Column("quote_volume_24h", sa.Float(), nullable=False),
        sa.Column("funding_rate", sa.Float(), nullable=True),
        sa.Column("open_interest_usd", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("symbol", "time", name="pk_market_snapshots"),
    )
    op.create_index("ix_market_snapshots_symbol_time", "market_snapshots", ["symbol", "time"])
    op.create_table(
        "open_interest",
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("usd", sa.Float(), nullable=False),
        sa.Column("as_of", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("symbol", name="pk_open_interest"),
    )
    op.create_table(
        "volume_alerts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("asset", sa.String(64), nullable=False),
        sa.Column("current_volume", sa.Float(), nullable=False),
        sa.Column("previous_volume", sa.Float(), nullable=False),
        sa.Column("volume_ratio", sa.Float(), nullable=False),
        sa.Column("price", sa.Float(), nullable=True),
        sa.Column("funding_rate", sa.Float(), nullable=True),
        sa.Column("candle_direction", sa.String(8), nullable=False),
        sa.Column("alert_type", sa.String(16), nullable=False),
        sa.Column("message", sa.String(512), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hour_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("is_update", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_volume_alerts"),
        sa.UniqueConstraint("symbol", "hour_timestamp", "alert_type", name="uq_volume_alerts_symbol_hour_type"),
    )
    op.create_index("ix_volume_alerts_timestamp", "volume_alerts", ["timestamp"])
    op.create_index("ix_volume_alerts_symbol_timestamp", "volume_alerts", ["symbol", "timestamp"])
    _timescale_hypertables()


def _timescale_hypertables() -> None:
    """Where the TimescaleDB extension is installed, time-series tables become hypertables."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    has_ts = bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).scalar()
    if not has_ts:
        return
    day_ms = 86_400_000
    for table, column in (("candles", "open_time"), ("market_snapshots", "time")):
        op.execute(
            sa.text(
                f"SELECT create_hypertable('{table}', '{column}', chunk_time_interval => {day_ms * 7}, "
                "migrate_data => true, if_not_exists => true)"
            )
        )


def downgrade() -> None:
    op.drop_table("volume_alerts")
    op.drop_table("open_interest")
    op.drop_table("market_snapshots")
    op.drop_table("candles")
