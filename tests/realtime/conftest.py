"""The realtime tests run the app as tests/api does: the same settings, app, client and SQLite runtime fixtures."""

from api.conftest import app, client, settings, sqlite_runtime  # noqa: F401  (fixtures)
