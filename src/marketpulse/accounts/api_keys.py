"""Personal API keys for scripts: `Authorization: Bearer mpk_<prefix>_<secret>`.

The whole key is shown once, at creation; the database keeps its SHA-256 (a random 256-bit secret needs no slow
hash) and the prefix, which lists and logs use to name it. A key acts for its user with its scopes only:
`read` (GET), `trade` (paper orders, deployments, backtest jobs), `alerts`. It can't sign in, change the password,
administer, or mint more keys: those need a signed-in session.
"""

from __future__ import annotations

import secrets
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.accounts.core import hash_token
from marketpulse.accounts.tables import ApiKeyRow
from marketpulse.clock import Clock

KEY_PREFIX = "mpk_"
MAX_KEYS_PER_USER = 20


class Scope(StrEnum):
    READ = "read"
    TRADE = "trade"
    ALERTS = "alerts"


class TooManyKeys(Exception):
    pass


def is_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def new_key() -> tuple[str, str]:
    """(prefix, whole key)."""
    prefix = KEY_PREFIX + secrets.token_hex(4)
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


class ApiKeys:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    async def create(self, user_id: str, name: str, scopes: list[Scope]) -> tuple[ApiKeyRow, str]:
        """The stored row and the whole key (the only time it exists outside the caller's hands)."""
        prefix, key = new_key()
        row = ApiKeyRow(id=str(uuid.uuid4()), user_id=user_id, name=name, prefix=prefix, key_hash=hash_token(key),
                        scopes=",".join(sorted({s.value for s in scopes})), created_at_ms=self.clock.now_ms())
        async with self.sessions() as s:
            if len(await self._live(s, user_id)) >= MAX_KEYS_PER_USER:
                raise TooManyKeys(f"at most {MAX_KEYS_PER_USER} keys: revoke one first")
            s.add(row)
            await s.commit()
        return row, key

    async def live(self, user_id: str) -> list[ApiKeyRow]:
        async with self.sessions() as s:
            return await self._live(s, user_id)

    async def revoke(self, user_id: str, key_id: str) -> bool:
        """False when the user has no such live key (someone else's id included)."""
        async with self.sessions() as s:
            done = await s.execute(update(ApiKeyRow).where(
                ApiKeyRow.id == key_id, ApiKeyRow.user_id == user_id, ApiKeyRow.revoked_at_ms.is_(None),
            ).values(revoked_at_ms=self.clock.now_ms()))
            await s.commit()
        return bool(done.rowcount)  # type: ignore[attr-defined]

    async def resolve(self, key: str) -> ApiKeyRow | None:
        """The live key row for a presented key, its last use recorded; None when unknown or revoked."""
        async with self.sessions() as s:
            row = (await s.execute(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_token(key)))).scalar_one_or_none()
            if row is None or row.revoked_at_ms is not None:
                return None
            row.last_used_at_ms = self.clock.now_ms()
            await s.commit()
        return row

    async def _live(self, s: AsyncSession, user_id: str) -> list[ApiKeyRow]:
        stmt = select(ApiKeyRow).where(ApiKeyRow.user_id == user_id, ApiKeyRow.revoked_at_ms.is_(None)).order_by(
            ApiKeyRow.created_at_ms, ApiKeyRow.id)
        return list((await s.execute(stmt)).scalars())


def scopes_of(row: ApiKeyRow) -> frozenset[str]:
    return frozenset(filter(None, row.scopes.split(",")))


def key_json(row: ApiKeyRow) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "prefix": row.prefix, "scopes": sorted(scopes_of(row)),
            "created_at_ms": row.created_at_ms, "last_used_at_ms": row.last_used_at_ms}
