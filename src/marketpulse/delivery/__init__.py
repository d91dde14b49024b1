"""Notification delivery: destinations, the transactional outbox, dispatchers and channels."""
