"""Watchlists and volume-alert subscriptions: what a signed-in user follows (core, tables, service, views)."""
