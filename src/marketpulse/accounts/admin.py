"""What administrators do to users: find them, look one up, change plan/status/role, end their sessions, force a
password reset, delete them with everything they own. Every change is written to the audit log in the same
transaction as the change.

An administrator can't change their own role or status or delete themselves: the last admin can't lock everyone
out by accident, and a stolen admin session can't quietly cover its tracks by demoting its owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from marketpulse.accounts.core import DELETED, Status, TokenPurpose
from marketpulse.accounts.plans import plan_named
from marketpulse.accounts.privacy import erase_user
from marketpulse.accounts.tables import ApiKeyRow, AuthSessionRow, UserRow
from marketpulse.storage.database import page
from marketpulse.times import ms_datetime

if TYPE_CHECKING:
    from marketpulse.accounts.service import AccountsService, Principal


DAY_MS = 86_400_000


class UserNotFound(Exception):
    pass


class SelfChange(Exception):
    """An administrator acting on their own role, status or existence."""


@dataclass(frozen=True)
class UserQuery:
    q: str | None = None  # part of the address, any case
    plan: str | None = None
    status: str | None = None
    role: str | None = None
    signed_up_from_ms: int | None = None
    signed_up_to_ms: int | None = None
    limit: int = 50
    offset: int = 0


class Admin:
    def __init__(self, accounts: AccountsService) -> None:
        self.accounts = accounts
        self.sessions = accounts.sessions
        self.audit = accounts.audit

    async def users(self, q: UserQuery) -> tuple[list[UserRow], int]:
        where = []
        if q.q:
            where.append(UserRow.email_key.contains(q.q.strip().casefold(), autoescape=True))
        if q.plan:
            where.append(UserRow.plan == plan_named(q.plan).name)
        if q.status:
            where.append(UserRow.status == q.status)
        if q.role:
            where.append(UserRow.role == q.role)
        if q.signed_up_from_ms is not None:
            where.append(UserRow.created_at_ms >= q.signed_up_from_ms)
        if q.signed_up_to_ms is not None:
            where.append(UserRow.created_at_ms < q.signed_up_to_ms)
        return await page(self.sessions, UserRow, where, [UserRow.created_at_ms.desc(), UserRow.id],
                          limit=q.limit, offset=q.offset)

    async def metrics(self, days: int = 30) -> dict[str, Any]:
        """Users by plan, status and role, sign-ups per UTC day over the last `days`, live sessions."""
        now = self.accounts.clock.now_ms()
        since = now - now % DAY_MS - (days - 1) * DAY_MS
        async with self.sessions() as s:
            counts: dict[str, dict[str, int]] = {}
            for name in ("plan", "status", "role"):
                col = getattr(UserRow, name)
                counts[name] = {k: int(n) for k, n in (await s.execute(select(col, func.count()).group_by(col)))}
            stmt = select(UserRow.created_at_ms).where(UserRow.created_at_ms >= since)
            created = list((await s.execute(stmt)).scalars())
            live = (await s.execute(select(func.count()).select_from(AuthSessionRow).where(
                AuthSessionRow.revoked_at_ms.is_(None), AuthSessionRow.expires_at_ms > now))).scalar_one()
        per_day = dict.fromkeys(range(since, now + 1, DAY_MS), 0)
        for t in created:
            per_day[t - t % DAY_MS] += 1
        return {"users_by_plan": counts["plan"], "users_by_status": counts["status"],
                "users_by_role": counts["role"], "active_sessions": int(live),
                "signups_per_day": [{"day": ms_datetime(d).date().isoformat(), "count": n}
                                    for d, n in per_day.items()]}

    async def user(self, user_id: str) -> tuple[UserRow, list[AuthSessionRow]]:
        user = await self.accounts.get_user(user_id)
        if user is None:
            raise UserNotFound(user_id)
        return user, await self.accounts.live_sessions(user_id)

    async def last_activity_ms(self, user_id: str) -> int | None:
        """The newest use of any of the user's sessions (ended ones too) or API keys; None: never signed in."""
        async with self.sessions() as s:
            by_session = (await s.execute(select(func.max(AuthSessionRow.last_used_at_ms))
                                          .where(AuthSessionRow.user_id == user_id))).scalar_one()
            by_key = (await s.execute(select(func.max(ApiKeyRow.last_used_at_ms))
                                      .where(ApiKeyRow.user_id == user_id))).scalar_one()
        return max((t for t in (by_session, by_key) if t is not None), default=None)

    async def update(self, actor: Principal, user_id: str, changes: dict[str, str], client: str | None) -> UserRow:
        """Apply `changes` (plan, status, role); a user no longer active loses every session at once."""
        if user_id == actor.user.id and {"role", "status"} & set(changes):
            raise SelfChange("you can't change your own role or status: ask another administrator")
        async with self.sessions() as s:
            user = await s.get(UserRow, user_id)
            if user is None:
                raise UserNotFound(user_id)
            new = self.accounts.change_user(s, user, changes, action="admin.user_updated",
                                            actor_id=actor.user.id, client=client)
            await s.commit()
        if new.get("status", Status.ACTIVE) != Status.ACTIVE:
            await self.accounts.end_sessions(user_id, reason=f"user_{new['status']}")
        await self.accounts.announce_user_change(user, new)  # after the commit: a listener sees the change
        return user

    async def sign_out_everywhere(self, actor: Principal, user_id: str, client: str | None) -> int:
        await self.user(user_id)
        ended = await self.accounts.end_sessions(user_id, reason="admin_signout")
        await self.audit.record("admin.user_signed_out", actor_id=actor.user.id, target_type="user",
                                target_id=user_id, new={"sessions_ended": ended}, client=client)
        return ended

    async def force_password_reset(self, actor: Principal, user_id: str, client: str | None) -> None:
        """The password stops working, every session ends, and a reset link goes to the user's address."""
        async with self.sessions() as s:
            user = await s.get(UserRow, user_id)
            if user is None:
                raise UserNotFound(user_id)
            user.password_hash, user.updated_at_ms = None, self.accounts.clock.now_ms()
            s.add(self.audit.entry("admin.password_reset_forced", actor_id=actor.user.id, target_type="user",
                                   target_id=user_id, client=client))
            await s.commit()
        await self.accounts.end_sessions(user_id, reason="admin_password_reset")
        ttl = self.accounts.settings.password_reset_ttl_s
        token = await self.accounts.issue_email_token(user_id, TokenPurpose.RESET_PASSWORD, ttl)
        if user.email is not None:  # a wallet-only account has nowhere to mail: its wallet still signs in
            await self.accounts.mailer.send_password_reset(user.email, token, ttl)

    async def delete(self, actor: Principal, user_id: str, client: str | None) -> None:
        if user_id == actor.user.id:
            raise SelfChange("you can't delete your own account here: ask another administrator")
        async with self.sessions() as s:
            user = await s.get(UserRow, user_id)
            if user is None:
                raise UserNotFound(user_id)
            kept: dict[str, Any] = {"plan": user.plan, "role": user.role, "status": user.status}  # no address
            erased = await erase_user(s, user_id)  # what they own; sessions, tokens and keys cascade
            s.add(self.audit.entry("admin.user_deleted", actor_id=actor.user.id, target_type="user",
                                   target_id=user_id, old=kept, new={"rows_erased": erased}, client=client))
            await s.commit()
        await self.accounts.announce_change(user_id, kept["plan"], DELETED)
