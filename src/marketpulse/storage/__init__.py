"""Storage: the SQLAlchemy engine, the declarative base and Alembic migrations (the only way the schema changes)."""
