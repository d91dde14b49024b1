"""Imports every capability's tables so Alembic and tests see one complete metadata."""

from marketpulse.accounts import tables as _accounts_tables  # noqa: F401
from marketpulse.backtest import tables as _backtest_tables  # noqa: F401
from marketpulse.credits import tables as _credits_tables  # noqa: F401
from marketpulse.delivery import tables as _delivery_tables  # noqa: F401
from marketpulse.detection import tables as _detection_tables  # noqa: F401
from marketpulse.marketdata import tables as _marketdata_tables  # noqa: F401
from marketpulse.onchain import tables as _onchain_tables  # noqa: F401
from marketpulse.payments import tables as _payments_tables  # noqa: F401
from marketpulse.portfolio import tables as _portfolio_tables  # noqa: F401
from marketpulse.rules import tables as _rules_tables  # noqa: F401
from marketpulse.signals import tables as _signals_tables  # noqa: F401
from marketpulse.storage.database import Base
from marketpulse.tax import tables as _tax_tables  # noqa: F401
from marketpulse.trading.paper import tables as _paper_tables  # noqa: F401
from marketpulse.watchlists import tables as _watchlist_tables  # noqa: F401

metadata = Base.metadata
