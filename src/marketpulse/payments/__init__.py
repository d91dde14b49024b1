"""Payments: Stripe subscriptions and credit packs by card (checkout, portal, webhooks, the grace period)."""
