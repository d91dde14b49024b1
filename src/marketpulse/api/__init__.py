"""HTTP and realtime surface: the FastAPI app factory, health, metrics, shared request security."""
