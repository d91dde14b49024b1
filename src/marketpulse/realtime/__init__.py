"""Realtime fan-out: bus messages → API state and Socket.IO events (`market`, `volume-alert`)."""
