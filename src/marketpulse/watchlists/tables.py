"""Watchlists, their symbols and volume-alert subscriptions. Every row carries `owner_id` (the user's id), which
is how every query is scoped and how account export and erasure find them; times are epoch milliseconds."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketpulse.storage.database import Base


class WatchlistRow(Base):
    __tablename__ = "watchlists"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_watchlists_owner_name"),)


class WatchlistItemRow(Base):
    __tablename__ = "watchlist_items"

    watchlist_id: Mapped[str] = mapped_column(String(36), ForeignKey("watchlists.id", ondelete="CASCADE"),
                                              primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # the order the user added them in
    added_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_watchlist_items_owner", "owner_id"),)


class VolumeAlertSubscriptionRow(Base):
    __tablename__ = "volume_alert_subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(32))  # a USDT perpetual, or * for every symbol
    created_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("owner_id", "symbol", name="uq_volume_alert_subscriptions_owner_symbol"),)
