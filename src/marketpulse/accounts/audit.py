"""The audit log's store: append and search, nothing else (the database refuses updates and deletes as well).

Values recorded are the changed fields only (plan, status, role…), never secrets: callers pass what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.accounts.tables import AuditRow
from marketpulse.clock import Clock
from marketpulse.storage.database import page


@dataclass(frozen=True)
class AuditQuery:
    action: str | None = None  # exact, or a prefix ending in "." ("admin.")
    actor_id: str | None = None
    target_id: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    limit: int = 50
    offset: int = 0


class AuditLog:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    def entry(self, action: str, *, actor_id: str | None, target_type: str, target_id: str | None,
              old: dict[str, Any] | None = None, new: dict[str, Any] | None = None,
              client: str | None = None) -> AuditRow:
        """A row to add in the caller's own transaction, so the action and its record commit together."""
        return AuditRow(created_at_ms=self.clock.now_ms(), actor_id=actor_id, action=action,
                        target_type=target_type, target_id=target_id, old_values=old, new_values=new,
                        client=(client or "")[:64] or None)

    async def record(self, action: str, **fields: Any) -> None:
        async with self.sessions() as s:
            s.add(self.entry(action, **fields))
            await s.commit()

    async def search(self, q: AuditQuery) -> tuple[list[AuditRow], int]:
        """Newest first, and how many match in all."""
        where = []
        if q.action:
            where.append(AuditRow.action.startswith(q.action, autoescape=True) if q.action.endswith(".")
                         else AuditRow.action == q.action)
        if q.actor_id:
            where.append(AuditRow.actor_id == q.actor_id)
        if q.target_id:
            where.append(AuditRow.target_id == q.target_id)
        if q.since_ms is not None:
            where.append(AuditRow.created_at_ms >= q.since_ms)
        if q.until_ms is not None:
            where.append(AuditRow.created_at_ms < q.until_ms)
        return await page(self.sessions, AuditRow, where, [AuditRow.id.desc()], limit=q.limit, offset=q.offset)


def audit_json(row: AuditRow) -> dict[str, Any]:
    return {"id": row.id, "created_at_ms": row.created_at_ms, "actor_id": row.actor_id, "action": row.action,
            "target_type": row.target_type, "target_id": row.target_id, "old_values": row.old_values,
            "new_values": row.new_values, "client": row.client}
