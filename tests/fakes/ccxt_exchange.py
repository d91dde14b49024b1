"""The fake Binance REST server for ccxt: it lives in the package (`marketpulse.portfolio.devexchange`) because
`pulse demo` runs it too, as the exchange its users connect; the tests import it from here as before."""

from marketpulse.portfolio.devexchange import (  # noqa: F401 (re-exported)
    PRIVATE,
    SERVER_TIME,
    Account,
    FakeCcxtExchange,
    deposit,
    funding_income,
    kline,
    my_trade,
    spot_symbol,
    withdrawal,
)
