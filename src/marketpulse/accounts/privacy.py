"""Everything a user owns, found by its `owner_id` column in every table that has one (paper trading, backtest
jobs, and whatever capability comes next), plus the account's own rows. Export gives it as one JSON document;
erasure deletes it. The audit log keeps the fact of an erasure, never the personal data.

Finding owned rows by column rather than by a list means a new owner-scoped table is exported and erased without
touching this file; `tests/accounts/test_privacy.py` fails if a table names its owner any other way.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketpulse.accounts.tables import (
    ApiKeyRow,
    AuthSessionRow,
    ExternalIdentityRow,
    PasskeyRow,
    UserRow,
    WalletRow,
)
from marketpulse.storage.models import metadata

OWNER_COLUMN = "owner_id"
SECRET_COLUMNS = {"password_hash", "key_hash", "token_hash", "email_key", "code_hash", "signing_secret"}


def owned_tables() -> list[Table]:
    """Tables whose rows belong to one owner, children before parents (safe order for deleting)."""
    return [t for t in reversed(metadata.sorted_tables) if OWNER_COLUMN in t.columns]


async def export_user(s: AsyncSession, user: UserRow) -> dict[str, Any]:
    account = {c.name: getattr(user, c.key) for c in UserRow.__table__.columns if c.name not in SECRET_COLUMNS}
    sessions = (await s.execute(select(AuthSessionRow).where(AuthSessionRow.user_id == user.id))).scalars()
    keys = (await s.execute(select(ApiKeyRow).where(ApiKeyRow.user_id == user.id))).scalars()
    wallets = (await s.execute(select(WalletRow).where(WalletRow.user_id == user.id))).scalars()
    identities = (await s.execute(select(ExternalIdentityRow).where(ExternalIdentityRow.user_id == user.id))).scalars()
    passkeys = (await s.execute(select(PasskeyRow).where(PasskeyRow.user_id == user.id))).scalars()
    owned: dict[str, list[dict[str, Any]]] = {}
    for table in reversed(owned_tables()):  # parents first reads naturally
        rows = (await s.execute(select(table).where(table.c[OWNER_COLUMN] == user.id))).mappings()
        owned[table.name] = [{k: v for k, v in r.items() if k not in SECRET_COLUMNS} for r in rows]
    return {
        "account": account,
        "sessions": [{"id": r.id, "created_at_ms": r.created_at_ms, "last_used_at_ms": r.last_used_at_ms,
                      "revoked_at_ms": r.revoked_at_ms, "client": r.client} for r in sessions],
        "api_keys": [{"id": r.id, "name": r.name, "prefix": r.prefix, "scopes": r.scopes,
                      "created_at_ms": r.created_at_ms, "last_used_at_ms": r.last_used_at_ms,
                      "revoked_at_ms": r.revoked_at_ms} for r in keys],
        "wallets": [{"chain": r.chain, "address": r.address, "created_at_ms": r.created_at_ms,
                     "last_used_at_ms": r.last_used_at_ms} for r in wallets],
        "external_identities": [{"provider": r.provider, "subject": r.subject, "email": r.email,
                                 "created_at_ms": r.created_at_ms, "last_used_at_ms": r.last_used_at_ms}
                                for r in identities],
        "passkeys": [{"name": r.name, "created_at_ms": r.created_at_ms, "last_used_at_ms": r.last_used_at_ms}
                     for r in passkeys],
        "owned": owned,
    }


async def erase_user(s: AsyncSession, user_id: str) -> dict[str, int]:
    """Delete the user's owned rows and the user (sessions, tokens, keys, wallets, identities, passkeys
    cascade); rows deleted per table."""
    counts: dict[str, int] = {}
    for table in owned_tables():
        result = await s.execute(delete(table).where(table.c[OWNER_COLUMN] == user_id))
        counts[table.name] = int(result.rowcount)  # type: ignore[attr-defined]
    await s.execute(delete(UserRow).where(UserRow.id == user_id))
    return counts
