"""Rule alerts' tables: the users' alert rules and the history of their matches (not the volume-spike alerts of
`detection/`, which are market-wide and owned by no one)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketpulse.storage.database import Base


class AlertRuleRow(Base):
    __tablename__ = "alert_rules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # the rule as the user wrote it (model.RuleIn, normalized)
    enabled: Mapped[bool] = mapped_column(Boolean)  # false: paused, expired by `once`, or saved disabled
    version: Mapped[int] = mapped_column(Integer, default=1)  # bumped by every change; the engine keeps the newest
    fired_count: Mapped[int] = mapped_column(Integer, default=0)
    last_fired_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_alert_rules_owner", "owner_id", "created_at_ms"),)


class AlertHistoryRow(Base):
    """One match of a rule: unique per (rule, triggering event), so a redelivered update can't notify twice."""

    __tablename__ = "alert_history"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    rule_id: Mapped[str] = mapped_column(String(36))
    rule_name: Mapped[str] = mapped_column(String(100))
    event_key: Mapped[str] = mapped_column(String(160))
    symbol: Mapped[str] = mapped_column(String(64))
    field: Mapped[str | None] = mapped_column(String(80), nullable=True)  # the value that moved (None: an event)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str] = mapped_column(String(500))
    channels: Mapped[list[str]] = mapped_column(JSON)
    time_ms: Mapped[int] = mapped_column(BigInteger)  # market time of the match
    created_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("rule_id", "event_key", name="uq_alert_history_rule_event"),
        Index("ix_alert_history_owner_time", "owner_id", "time_ms"),
    )


class AlertRuleStateRow(Base):
    """A rule's trigger state on one symbol, as the engine left it: disarmed (waiting for the hysteresis band) and
    when it last fired (its cooldown and bar). Written with the matches that change it, so a restarted worker
    resumes it instead of re-firing a crossing or forgetting a cooldown. Kept for the rule's `rule_version` only (a
    change to the rule starts it afresh); `as_of_ms` (market time) lets the newest state win when several workers
    write it."""

    __tablename__ = "alert_rule_states"

    rule_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    rule_version: Mapped[int] = mapped_column(Integer)
    armed: Mapped[bool] = mapped_column(Boolean)
    last_fired_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    as_of_ms: Mapped[int] = mapped_column(BigInteger)
