"""How many transactions this process has committed, through any engine: what in-process caches of database
reads compare to know that nothing they read can have changed here since (`commit_count()`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event

_commits = [0]


@event.listens_for(Engine, "commit")
def _count_commit(_connection: Any) -> None:
    _commits[0] += 1


def commit_count() -> int:
    return _commits[0]
