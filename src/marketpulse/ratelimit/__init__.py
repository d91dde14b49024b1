"""Per-plan API rate limits: every HTTP request but static files, health, metrics and Socket.IO is counted against
its caller's plan (per user, per personal API key, or per client address for anonymous callers)."""
