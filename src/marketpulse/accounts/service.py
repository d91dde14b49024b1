"""Accounts over the database: sign-up, sign-in sessions with rotating refresh tokens, one-time email tokens.

One instance per process, built with the runtime's services (`runtime.services.accounts`). Password hashing
(argon2id) is deliberately slow, so it runs on a thread and never blocks the event loop. Every time comes from the
injected clock; only the rate limiter (the `limits` library) keeps its own wall-clock windows.

Sessions: signing in opens an `auth_sessions` row (one device) and hands out a short-lived access token naming it
plus a refresh token. Each refresh spends its token and issues the next one of the same family; presenting a spent
token again means it was copied, so the whole family (the session) is revoked. Access tokens are checked against
their session on every request, so revoking a session, or suspending a user, takes effect at once.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import structlog
from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import StorageTypes, storage_from_string
from pwdlib import PasswordHash
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.accounts.admin import Admin
from marketpulse.accounts.api_keys import ApiKeys, is_api_key, scopes_of
from marketpulse.accounts.audit import AuditLog
from marketpulse.accounts.brute_force import ACCOUNT, CLIENT, Attempts, Rule, SigninGuard
from marketpulse.accounts.core import (
    DELETED,
    AccessClaims,
    InvalidToken,
    Role,
    Status,
    TokenPurpose,
    decode_access_token,
    email_key,
    encode_access_token,
    hash_token,
    new_secret_token,
)
from marketpulse.accounts.google import GoogleSignIn
from marketpulse.accounts.mail import Mailer
from marketpulse.accounts.passkeys import Passkeys
from marketpulse.accounts.plans import DEFAULT_PLAN, plan_named
from marketpulse.accounts.preferences import PreferencesStore
from marketpulse.accounts.privacy import erase_user, export_user
from marketpulse.accounts.tables import AuthSessionRow, EmailTokenRow, RefreshTokenRow, UserRow
from marketpulse.accounts.totp import Totp
from marketpulse.accounts.wallets import Wallets
from marketpulse.bus import EventBus, topics
from marketpulse.clock import Clock
from marketpulse.settings import Settings
from marketpulse.storage.commits import commit_count

if TYPE_CHECKING:
    from marketpulse.accounts.devmail import DevMailbox

log = structlog.get_logger(__name__)


class AccountError(Exception):
    """A refusal the caller can act on; views map each subclass to one status."""


class EmailTaken(AccountError):
    pass


# Erasing an account without a password takes a session this fresh: a stolen older one can't erase.
RECENT_SIGNIN_S = 600


class BadCredentials(AccountError):
    pass


class EraseRefused(AccountError):
    """Erasing the account needs proof it is the user asking; `field` names the body field that lacks it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class EmailNotVerified(AccountError):
    pass


class AccountNotActive(AccountError):
    def __init__(self, status: str) -> None:
        super().__init__(f"this account is {status}")
        self.status = status


class InvalidRefreshToken(AccountError):
    pass


class InvalidEmailToken(AccountError):
    pass


class RateLimited(AccountError):
    def __init__(self, retry_after_s: int, message: str | None = None) -> None:
        super().__init__(message or f"too many requests: try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives
    session_id: str


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: the user as stored now, and the session or API key its credential belongs to."""

    user: UserRow
    session_id: str | None  # None: an API key
    scopes: frozenset[str] | None = None  # an API key's scopes; None: a signed-in session may do anything
    key_id: str | None = None

    def allows(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes


# Who an access token acts for, remembered between requests: every authenticated read would otherwise pay a
# database round trip (the largest cost of `GET /api/v1/market/data` once its body is pre-encoded). An entry holds
# while nothing was committed in this process since it was read (any commit, through any engine, forgets them all:
# a sign-out, a suspension, a plan change here is seen by the next request) and for at most PRINCIPAL_TTL_S of
# monotonic time (what another process committed is seen within that); the token's and the session's expiry are
# checked against the injected clock on every hit.
PRINCIPAL_TTL_S = 1.0
PRINCIPAL_CACHE_MAX = 10_000


class AccountsService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings,
                 mailer: Mailer | None = None, bus: EventBus | None = None) -> None:
        self.sessions = sessions
        self._principals: dict[str, tuple[int, float, int, Principal]] = {}  # token → (commits, at, expiry, who)
        self.bus = bus  # where plan and status changes are announced (None: a CLI process with no listeners)
        self.clock = clock
        self.settings = settings
        self.mailer = mailer or Mailer(settings)
        self.hasher = PasswordHash.recommended()  # argon2id
        self._limiter = MovingWindowRateLimiter(limit_storage(settings.rate_limit_storage,
                                                                    settings.deployment))
        self._mail_limit = parse(settings.auth_email_rate_limit)
        self.signin_guard = SigninGuard(sessions, clock)
        self.audit = AuditLog(sessions, clock)
        self.api_keys = ApiKeys(sessions, clock)
        self.admin = Admin(self)
        self.wallets = Wallets(self)
        self.totp = Totp(self)
        self.preferences = PreferencesStore(sessions, clock)
        self.passkeys = Passkeys(self)
        self.google = GoogleSignIn(self)
        self.dev_mailbox: DevMailbox | None = None  # `pulse demo`'s local mailbox, shown at /dev/mail

    async def close(self) -> None:
        if self.dev_mailbox is not None:
            await asyncio.to_thread(self.dev_mailbox.stop)
            self.dev_mailbox = None

    @cached_property
    def _dummy_hash(self) -> str:
        """Verified against when the address is unknown, so that costs the same time as a wrong password."""
        return self.hasher.hash(new_secret_token())

    # --- users ---

    async def create_user(self, email: str, password: str | None, *, role: Role = Role.USER,
                          plan: str = DEFAULT_PLAN, verified: bool = False) -> UserRow:
        now = self.clock.now_ms()
        hashed = await asyncio.to_thread(self.hasher.hash, password) if password is not None else None
        row = UserRow(id=str(uuid.uuid4()), email=email.strip(), email_key=email_key(email), password_hash=hashed,
                      role=role.value, status=Status.ACTIVE.value, plan=plan_named(plan).name, created_at_ms=now,
                      verified_at_ms=now if verified else None, updated_at_ms=now)
        async with self.sessions() as s:
            if await self._user_by_email(s, email) is not None:
                raise EmailTaken(f"an account with the address {email.strip()} already exists")
            s.add(row)
            await s.commit()
        log.info("user created", user=row.id, role=row.role, plan=row.plan)
        return row

    async def signup(self, email: str, password: str) -> UserRow:
        user = await self.create_user(email, password)
        await self._mail_verification(user)
        return user

    def change_user(self, s: AsyncSession, user: UserRow, changes: dict[str, str], *, action: str,
                    actor_id: str | None, client: str | None = None,
                    note: dict[str, Any] | None = None) -> dict[str, str]:
        """THE one way a user's plan (or status, role) changes, whoever changes it (an administrator, Stripe, a
        refund): the fields that differ are set and the audit entry added in the caller's transaction; the fields
        that changed are returned. After the commit the caller passes them to `announce_user_change`, which moves
        the user's live connections (their table and cadence change without a reload)."""
        old = {k: getattr(user, k) for k in changes if getattr(user, k) != changes[k]}
        new = {k: changes[k] for k in old}
        for k, v in new.items():
            setattr(user, k, v)
        if new:
            user.updated_at_ms = self.clock.now_ms()
            s.add(self.audit.entry(action, actor_id=actor_id, target_type="user", target_id=user.id, old=old,
                                   new={**new, **(note or {})}, client=client))
        return new

    async def announce_user_change(self, user: UserRow, changed: dict[str, str]) -> None:
        """After `change_user`'s commit: tell every API process when the plan or status changed."""
        if {"plan", "status"} & set(changed):
            await self.announce_change(user.id, user.plan, user.status)

    async def announce_change(self, user_id: str, plan: str, status: str) -> None:
        """Tell every API process that a user's plan or status changed (or the user is gone: status `deleted`), so
        their live connections move to the new tier or are closed (`realtime/bridge.py`)."""
        if self.bus is not None:
            await self.bus.publish(topics.ACCOUNT_CHANGED, topics.AccountChanged(user_id, plan, status))

    async def get_user(self, user_id: str) -> UserRow | None:
        async with self.sessions() as s:
            return await s.get(UserRow, user_id)

    async def find_user(self, email: str) -> UserRow | None:
        async with self.sessions() as s:
            return await self._user_by_email(s, email)

    # --- sign-in and sessions ---

    async def authenticate(self, email: str, password: str, client: str | None = None) -> UserRow:
        """The user these credentials belong to; BadCredentials whether the address or the password is wrong.

        Failures are counted per address and per client (`brute_force`): each one makes the next attempt wait
        twice as long, and past the limit the account (or client) is locked; until then every attempt answers
        RateLimited, right password or not, so guessing costs time instead of CPU."""
        keys = {ACCOUNT: email_key(email), CLIENT: client or "unknown"}
        await self.check_signin_allowed(keys)
        user = await self.find_user(email)
        if user is not None and user.password_hash:
            stored = user.password_hash
        else:
            stored = await asyncio.to_thread(lambda: self._dummy_hash)  # hashed once, off the event loop
        ok = await asyncio.to_thread(self.hasher.verify, password, stored)
        if user is None or not user.password_hash or not ok:
            await self.count_signin_failure(keys, user, client)
            raise BadCredentials("wrong email or password")
        async with self.sessions() as s:  # the right password: the account's count starts over
            await self.signin_guard.clear(s, ACCOUNT, [keys[ACCOUNT]])
            await s.commit()
        if user.status != Status.ACTIVE:
            log.warning("security: sign-in refused", user=user.id, reason=user.status)
            raise AccountNotActive(user.status)
        if user.verified_at_ms is None:
            raise EmailNotVerified("confirm your address first: follow the link we mailed you")
        return user

    def _signin_rules(self) -> dict[str, Rule]:
        return {ACCOUNT: Rule.parse(self.settings.signin_failure_limit),
                CLIENT: Rule.parse(self.settings.signin_client_failure_limit)}

    async def count_signin_failure(self, keys: dict[str, str], user: UserRow | None = None,
                                   client: str | None = None, *, factor: str = "password") -> None:
        """A failed sign-in: counted per account and client, logged and audited as a security event (never with
        what was tried); the failure that reaches the limit locks, and mails the account's owner an unlock link."""
        counts = await self.signin_guard.fail(keys, self._signin_rules())
        failures = counts[ACCOUNT][1].failures
        log.warning("security: sign-in failed", user=user.id if user else None, reason="bad_credentials",
                    factor=factor, failures=failures)
        entries = [self.audit.entry("auth.signin_failed", actor_id=None, target_type="user",
                                    target_id=user.id if user else None, client=client,
                                    new={"factor": factor, "failures": failures})]
        newly_locked = [kind for kind, (before, after) in counts.items() if _locks(before, after)]
        for kind in newly_locked:
            log.warning("security: sign-in lock set", by=kind, user=user.id if user else None)
            entries.append(self.audit.entry("auth.signin_locked", actor_id=None, target_type="user",
                                            target_id=user.id if user and kind == ACCOUNT else None, client=client,
                                            new={"by": kind, "failures": counts[kind][1].failures}))
        async with self.sessions() as s:
            s.add_all(entries)
            await s.commit()
        if ACCOUNT in newly_locked and user is not None and user.email is not None:
            ttl = self.settings.account_unlock_ttl_s
            token = await self.issue_email_token(user.id, TokenPurpose.UNLOCK_ACCOUNT, ttl)
            await self.mailer.send_unlock(user.email, token, ttl)

    async def check_signin_allowed(self, keys: dict[str, str]) -> None:
        found = await self.signin_guard.refusal(keys, self._signin_rules())
        if found is None:
            return
        kind, refusal = found
        retry = max(1, refusal.retry_after_s)
        if refusal.locked:
            log.warning("security: sign-in locked", by=kind, retry_after_s=retry)
            how = " or follow the unlock link mailed to the account's address" if kind == ACCOUNT else ""
            raise RateLimited(retry, f"too many failed sign-ins: locked, try again in {retry} s{how}")
        log.warning("security: sign-in delayed", by=kind, retry_after_s=retry)
        raise RateLimited(retry, f"too many failed sign-ins: wait {retry} s before trying again")

    async def unlock(self, token: str) -> UserRow:
        """Spend a mailed unlock token: the account's failed sign-ins are forgotten and its lock lifted."""
        now = self.clock.now_ms()
        async with self.sessions() as s:
            row = await self._spend_email_token(s, token, TokenPurpose.UNLOCK_ACCOUNT, now)
            user = await s.get(UserRow, row.user_id)
            assert user is not None  # the token's foreign key cascades with the user
            await self._forget_failures(s, user)
            s.add(self.audit.entry("auth.account_unlocked", actor_id=user.id, target_type="user", target_id=user.id))
            await s.commit()
        log.info("security: account unlocked", user=user.id)
        return user

    async def _forget_failures(self, s: AsyncSession, user: UserRow) -> None:
        """The mailed link proved the owner: their failed sign-ins (password and second factor) are forgotten."""
        await self.signin_guard.clear(s, ACCOUNT, [k for k in (user.email_key, f"2fa:{user.id}") if k])

    async def needs_second_factor(self, user_id: str) -> bool:
        """Whether a first factor (password, wallet, Google) only earns a challenge: TOTP is on or a passkey is
        registered. A passkey sign-in is both factors at once, so it never asks."""
        return await self.totp.enabled(user_id) or await self.passkeys.count(user_id) > 0

    async def start_session(self, user: UserRow, client: str | None = None) -> Tokens:
        now = self.clock.now_ms()
        session = AuthSessionRow(id=str(uuid.uuid4()), user_id=user.id, created_at_ms=now, last_used_at_ms=now,
                                 expires_at_ms=now + self._session_ttl_s(user) * 1000,
                                 client=(client or "")[:64] or None)
        async with self.sessions() as s:
            s.add(session)
            await s.flush()
            refresh = self._new_refresh(s, session.id, now, self._session_ttl_s(user))
            await s.commit()
        log.info("security: signed in", user=user.id, session=session.id)
        return self._tokens(user, session.id, refresh, now)

    async def refresh(self, refresh_token: str) -> Tokens:
        """Spend a refresh token for a new pair. A spent token presented again revokes its whole family."""
        now = self.clock.now_ms()
        token_hash = hash_token(refresh_token)
        async with self.sessions() as s:
            spent = await s.execute(
                update(RefreshTokenRow)
                .where(RefreshTokenRow.token_hash == token_hash, RefreshTokenRow.used_at_ms.is_(None))
                .values(used_at_ms=now)
            )
            row = await s.get(RefreshTokenRow, token_hash)
            if row is None:
                raise InvalidRefreshToken("unknown refresh token")
            if spent.rowcount != 1:  # type: ignore[attr-defined]
                await self._revoke(s, [row.session_id], now, "refresh_reuse")
                s.add(self.audit.entry("auth.refresh_reuse", actor_id=None, target_type="session",
                                       target_id=row.session_id))
                await s.commit()
                log.warning("security: refresh token reused; session revoked", session=row.session_id)
                raise InvalidRefreshToken("refresh token already used: the session has been ended")
            session = await s.get(AuthSessionRow, row.session_id)
            user = await s.get(UserRow, session.user_id) if session is not None else None
            if session is None or user is None or not _live(session, now) or row.expires_at_ms <= now:
                raise InvalidRefreshToken("the session has ended: sign in again")
            if user.status != Status.ACTIVE:
                raise AccountNotActive(user.status)
            session.last_used_at_ms = now
            session.expires_at_ms = now + self._session_ttl_s(user) * 1000
            refresh = self._new_refresh(s, session.id, now, self._session_ttl_s(user))
            await s.commit()
        return self._tokens(user, session.id, refresh, now)

    async def principal(self, access_token: str) -> Principal:
        """Who an access token (or personal API key) acts for, checked against the stored session or key and the
        user (InvalidToken otherwise; AccountNotActive for a suspended or banned user)."""
        if is_api_key(access_token):
            return await self._key_principal(access_token)
        now = self.clock.now_ms()
        claims = decode_access_token(access_token, self.settings.jwt_secret_key.get_secret_value(), now)
        commits, at = commit_count(), time.monotonic()
        cached = self._principals.get(access_token)
        if cached is not None and cached[0] == commits and at - cached[1] < PRINCIPAL_TTL_S and cached[2] > now:
            return cached[3]
        # One round trip for the session and its user: every authenticated read pays it.
        stmt = (select(AuthSessionRow, UserRow).join(UserRow, UserRow.id == AuthSessionRow.user_id)
                .where(AuthSessionRow.id == claims.session_id))
        async with self.sessions() as s:
            found = (await s.execute(stmt)).first()
        if found is None:
            raise InvalidToken("the session has ended: sign in again")
        session, user = found
        if session.user_id != claims.user_id or not _live(session, now):
            raise InvalidToken("the session has ended: sign in again")
        if user.status != Status.ACTIVE:
            raise AccountNotActive(user.status)
        principal = Principal(user, session.id)
        if len(self._principals) >= PRINCIPAL_CACHE_MAX:
            self._principals.clear()
        self._principals[access_token] = (commits, at, session.expires_at_ms, principal)
        return principal

    async def _key_principal(self, key: str) -> Principal:
        row = await self.api_keys.resolve(key)
        user = await self.get_user(row.user_id) if row is not None else None
        if row is None or user is None:
            raise InvalidToken("unknown or revoked API key")
        if user.status != Status.ACTIVE:
            raise AccountNotActive(user.status)
        return Principal(user, None, scopes_of(row), row.id)

    async def export(self, user_id: str) -> dict[str, Any]:
        """Everything the user owns, as one JSON-ready document (no password hash, no token or key hashes)."""
        async with self.sessions() as s:
            user = await s.get(UserRow, user_id)
            if user is None:
                raise InvalidToken("the account no longer exists")
            return await export_user(s, user)

    async def erase(self, principal: Principal, password: str | None, *, confirmed: bool = False) -> None:
        """Delete the account and everything it owns, once the user proves it is them asking: the password when
        the account has one, else an explicit confirmation from a session signed in within
        RECENT_SIGNIN_S (a wallet-only account has no password to ask for)."""
        user = principal.user
        if user.password_hash:
            if not password or not await asyncio.to_thread(self.hasher.verify, password, user.password_hash):
                raise EraseRefused("password", "the password is wrong")
        else:
            await self._check_recent_signin(principal, confirmed)
        async with self.sessions() as s:
            erased = await erase_user(s, user.id)
            s.add(self.audit.entry("account.erased", actor_id=user.id, target_type="user", target_id=user.id,
                                   new={"rows_erased": erased}))
            await s.commit()
        await self.announce_change(user.id, user.plan, DELETED)
        log.info("security: account erased", user=user.id)

    async def _check_recent_signin(self, principal: Principal, confirmed: bool) -> None:
        if not confirmed:
            raise EraseRefused("confirm", 'this account has no password: send confirm: "DELETE"')
        async with self.sessions() as s:
            session = await s.get(AuthSessionRow, principal.session_id) if principal.session_id else None
        if session is None or self.clock.now_ms() - session.created_at_ms > RECENT_SIGNIN_S * 1000:
            raise EraseRefused("confirm", f"sign in again first: erasing needs a sign-in from the last "
                                          f"{RECENT_SIGNIN_S // 60} minutes")

    async def owner_of_socket(self, auth: Any) -> str | None:
        """The user a Socket.IO `auth` payload signs in as; None: anonymous (no shared owner)."""
        principal = await self.principal_of_socket(auth)
        return principal.user.id if principal is not None else None

    async def principal_of_socket(self, auth: Any, cookie: str | None = None) -> Principal | None:
        """Who a Socket.IO connection signs in as: its `auth` payload's `token` (an access token or API key), else
        the browser's session cookie; None: anonymous (a credential that doesn't work only means anonymous)."""
        token = auth.get("token") if isinstance(auth, dict) else None
        for credential in (token, cookie):
            if isinstance(credential, str) and credential:
                try:
                    return await self.principal(credential)
                except (InvalidToken, AccountNotActive):
                    continue
        return None

    async def signout(self, session_id: str) -> None:
        async with self.sessions() as s:
            await self._revoke(s, [session_id], self.clock.now_ms(), "signout")
            await s.commit()

    async def end_sessions(self, user_id: str, *, keep: str | None = None, reason: str) -> int:
        """Revoke every live session of the user but `keep`; how many ended."""
        now = self.clock.now_ms()
        async with self.sessions() as s:
            stmt = select(AuthSessionRow.id).where(AuthSessionRow.user_id == user_id,
                                                  AuthSessionRow.revoked_at_ms.is_(None))
            ids = [i for i in (await s.execute(stmt)).scalars() if i != keep]
            await self._revoke(s, ids, now, reason)
            await s.commit()
        return len(ids)

    async def live_sessions(self, user_id: str) -> list[AuthSessionRow]:
        now = self.clock.now_ms()
        async with self.sessions() as s:
            stmt = select(AuthSessionRow).where(AuthSessionRow.user_id == user_id).order_by(
                AuthSessionRow.created_at_ms)
            return [r for r in (await s.execute(stmt)).scalars() if _live(r, now)]

    # --- passwords and email tokens ---

    async def change_password(self, principal: Principal, current: str, new: str) -> None:
        user = principal.user
        if not user.password_hash or not await asyncio.to_thread(self.hasher.verify, current, user.password_hash):
            log.warning("security: password change refused", user=user.id, reason="bad_credentials")
            raise BadCredentials("the current password is wrong")
        await self.set_password(user.id, new)
        ended = await self.end_sessions(user.id, keep=principal.session_id, reason="password_changed")
        log.info("security: password changed", user=user.id, sessions_ended=ended)
        await self.audit.record("auth.password_changed", actor_id=user.id, target_type="user", target_id=user.id,
                                new={"sessions_ended": ended})

    async def verify_email(self, token: str) -> UserRow:
        now = self.clock.now_ms()
        async with self.sessions() as s:
            row = await self._spend_email_token(s, token, TokenPurpose.VERIFY_EMAIL, now)
            user = await s.get(UserRow, row.user_id)
            assert user is not None  # the token's foreign key cascades with the user
            if user.verified_at_ms is None:
                user.verified_at_ms = user.updated_at_ms = now
            await s.commit()
        log.info("email verified", user=user.id)
        return user

    async def resend_verification(self, email: str, client: str | None) -> None:
        """Mail a new verification link if `email` has an unverified account; silent either way."""
        await self._check_mail_rate(email, client)
        user = await self.find_user(email)
        if user is not None and user.verified_at_ms is None and user.status == Status.ACTIVE:
            await self._mail_verification(user)

    async def request_password_reset(self, email: str, client: str | None) -> None:
        """Mail a reset link if `email` has an active account with a password; silent either way."""
        await self._check_mail_rate(email, client)
        user = await self.find_user(email)
        if user is None or user.email is None or user.status != Status.ACTIVE:
            return
        token = await self.issue_email_token(user.id, TokenPurpose.RESET_PASSWORD, self.settings.password_reset_ttl_s)
        await self.mailer.send_password_reset(user.email, token, self.settings.password_reset_ttl_s)

    async def reset_password(self, token: str, new: str) -> None:
        """Spend a reset token and set the password; every session of the user ends."""
        now = self.clock.now_ms()
        async with self.sessions() as s:
            row = await self._spend_email_token(s, token, TokenPurpose.RESET_PASSWORD, now)
            user = await s.get(UserRow, row.user_id)
            if user is not None:  # a reset lifts a lock as the unlock link does: both prove the address
                await self._forget_failures(s, user)
            await s.commit()
        await self.set_password(row.user_id, new, verified_at_ms=now)  # the mail link proves the address too
        ended = await self.end_sessions(row.user_id, reason="password_reset")
        log.info("security: password reset", user=row.user_id, sessions_ended=ended)
        await self.audit.record("auth.password_reset", actor_id=row.user_id, target_type="user",
                                target_id=row.user_id, new={"sessions_ended": ended})

    # --- helpers ---

    def _tokens(self, user: UserRow, session_id: str, refresh: str, now: int) -> Tokens:
        ttl = self._access_ttl_s(user)
        access = encode_access_token(AccessClaims(user.id, session_id, now, now + ttl * 1000),
                                     self.settings.jwt_secret_key.get_secret_value())
        return Tokens(access, refresh, ttl, session_id)

    def _access_ttl_s(self, user: UserRow) -> int:
        """Administrators' access tokens expire sooner too (PULSE_ADMIN_ACCESS_TTL_S, never longer than a user's)."""
        s = self.settings
        return min(s.admin_access_ttl_s, s.access_token_ttl_s) if user.role == Role.ADMIN else s.access_token_ttl_s

    def _new_refresh(self, s: AsyncSession, session_id: str, now: int, ttl_s: int) -> str:
        token = new_secret_token()
        s.add(RefreshTokenRow(token_hash=hash_token(token), session_id=session_id, issued_at_ms=now,
                              expires_at_ms=now + ttl_s * 1000))
        return token

    def _session_ttl_s(self, user: UserRow) -> int:
        """Administrators' sessions are shorter: a stolen admin session is worth more."""
        s = self.settings
        return min(s.admin_refresh_token_ttl_s, s.refresh_token_ttl_s) if user.role == Role.ADMIN \
            else s.refresh_token_ttl_s

    async def _revoke(self, s: AsyncSession, session_ids: Sequence[str], now: int, reason: str) -> None:
        if session_ids:
            await s.execute(update(AuthSessionRow).where(
                AuthSessionRow.id.in_(list(session_ids)), AuthSessionRow.revoked_at_ms.is_(None)
            ).values(revoked_at_ms=now, revoked_reason=reason))

    async def _user_by_email(self, s: AsyncSession, email: str) -> UserRow | None:
        stmt = select(UserRow).where(UserRow.email_key == email_key(email))
        return (await s.execute(stmt)).scalar_one_or_none()

    async def set_password(self, user_id: str, password: str, *, verified_at_ms: int | None = None) -> None:
        hashed = await asyncio.to_thread(self.hasher.hash, password)
        async with self.sessions() as s:
            user = await s.get(UserRow, user_id)
            assert user is not None
            user.password_hash, user.updated_at_ms = hashed, self.clock.now_ms()
            if verified_at_ms is not None and user.verified_at_ms is None:
                user.verified_at_ms = verified_at_ms
            await s.commit()

    async def _mail_verification(self, user: UserRow) -> None:
        if user.email is None:  # a wallet-only account: nothing to verify
            return
        ttl = self.settings.verify_email_ttl_s
        token = await self.issue_email_token(user.id, TokenPurpose.VERIFY_EMAIL, ttl)
        await self.mailer.send_verification(user.email, token, ttl)

    async def issue_email_token(self, user_id: str, purpose: TokenPurpose, ttl_s: int) -> str:
        """A new single-use token; earlier unspent ones of the same purpose stop working (only the newest mail
        counts)."""
        now = self.clock.now_ms()
        token = new_secret_token()
        async with self.sessions() as s:
            await s.execute(update(EmailTokenRow).where(
                EmailTokenRow.user_id == user_id, EmailTokenRow.purpose == purpose.value,
                EmailTokenRow.used_at_ms.is_(None),
            ).values(used_at_ms=now))
            s.add(EmailTokenRow(token_hash=hash_token(token), user_id=user_id, purpose=purpose.value,
                                created_at_ms=now, expires_at_ms=now + ttl_s * 1000))
            await s.commit()
        return token

    async def _spend_email_token(self, s: AsyncSession, token: str, purpose: TokenPurpose,
                                 now: int) -> EmailTokenRow:
        token_hash = hash_token(token)
        spent = await s.execute(update(EmailTokenRow).where(
            EmailTokenRow.token_hash == token_hash, EmailTokenRow.purpose == purpose.value,
            EmailTokenRow.used_at_ms.is_(None), EmailTokenRow.expires_at_ms > now,
        ).values(used_at_ms=now))
        if spent.rowcount != 1:  # type: ignore[attr-defined]
            raise InvalidEmailToken("this link is invalid, expired or already used: ask for a new one")
        row = await s.get(EmailTokenRow, token_hash)
        assert row is not None
        return row

    async def _check_mail_rate(self, email: str, client: str | None) -> None:
        """Per address and per client, counted whether or not the address has an account."""
        keys = [("email", email_key(email)), ("client", client or "unknown")]
        for kind, key in keys:
            if not await self._limiter.hit(self._mail_limit, "auth-mail", kind, key):
                stats = await self._limiter.get_window_stats(self._mail_limit, "auth-mail", kind, key)
                retry = max(1, math.ceil(stats.reset_time - time.time()))  # the limiter keeps wall-clock windows
                log.warning("security: account mail rate-limited", by=kind)
                raise RateLimited(retry)


def limit_storage(url: str, deployment: str | None = None) -> StorageTypes:
    """The `limits` async storage at `url`; Redis through redis-py (already a dependency) rather than coredis, its
    keys under a named deployment's prefix (two deployments on one Redis must not share their counts)."""
    url = url.removeprefix("async+")
    options: dict[str, str] = {}
    if url.startswith(("redis://", "rediss://")):
        from marketpulse.bus import key_prefix

        options["implementation"] = "redispy"
        if deployment:
            options["key_prefix"] = f"{key_prefix(deployment)}limits"
    return storage_from_string(f"async+{url}", **options)


def _locks(before: Attempts | None, after: Attempts) -> bool:
    return after.locked_at_ms is not None and (before is None or before.locked_at_ms is None)


def _live(session: AuthSessionRow, now: int) -> bool:
    return session.revoked_at_ms is None and session.expires_at_ms > now


async def user_plan(s: AsyncSession, user_id: str) -> str | None:
    """The user's plan as stored now (None: no such user), read in the caller's transaction; paper trading asks
    it before each risk check, so an admin's plan change applies to the user's next order."""
    plan: str | None = await s.scalar(select(UserRow.plan).where(UserRow.id == user_id))
    return plan
