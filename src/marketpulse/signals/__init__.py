"""Strategy signals: TradingView webhooks in, UT Bot (and other strategies) computed in-house, subscriptions."""
