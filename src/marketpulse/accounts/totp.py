"""TOTP (RFC 6238, pyotp) as a second factor after the password, with single-use recovery codes.

Enrol makes a pending secret; a first valid code confirms it and hands out the recovery codes (shown once, stored
as SHA-256). From then on a correct password only earns a short-lived challenge (a JWT of its own audience); the
code or a recovery code turns the challenge into a session. A code is accepted for the current 30 s step or one
either side (clock skew), and never for a step already used, so an observed code can't be replayed. Times come
from the injected clock.
"""

from __future__ import annotations

import hmac
import secrets
from typing import TYPE_CHECKING, Any

import jwt
import pyotp
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketpulse.accounts.core import JWT_ALGORITHM, JWT_ISSUER, hash_token
from marketpulse.accounts.tables import RecoveryCodeRow, TotpFactorRow, UserRow

if TYPE_CHECKING:
    from marketpulse.accounts.service import AccountsService

STEP_S = 30
RECOVERY_CODES = 10
CHALLENGE_AUDIENCE = "marketpulse-second-factor"  # an access token is never accepted as a challenge, nor vice versa
CHALLENGE_TTL_S = 300
ISSUER_NAME = "marketpulse"


class SecondFactorError(Exception):
    """A code, challenge or enrolment step that doesn't hold; `field` names the body field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class AlreadyEnrolled(Exception):
    pass


def matching_step(secret: str, code: str, now_s: int) -> int | None:
    """The 30 s step (now, or one either side) whose code `code` is; None when none is."""
    totp, step = pyotp.TOTP(secret), now_s // STEP_S
    for candidate in (step, step - 1, step + 1):
        if hmac.compare_digest(totp.at(candidate * STEP_S), code):
            return candidate
    return None


class Totp:
    def __init__(self, accounts: AccountsService) -> None:
        self.accounts = accounts

    def _now_s(self) -> int:
        return self.accounts.clock.now_ms() // 1000

    async def enabled(self, user_id: str) -> bool:
        async with self.accounts.sessions() as s:
            row = await s.get(TotpFactorRow, user_id)
            return row is not None and row.confirmed_at_ms is not None

    async def enrol(self, user: UserRow) -> tuple[str, str]:
        """A new pending secret (replacing a pending one) and its otpauth:// URI for the authenticator app."""
        secret, now = pyotp.random_base32(), self.accounts.clock.now_ms()
        async with self.accounts.sessions() as s:
            row = await s.get(TotpFactorRow, user.id)
            if row is not None and row.confirmed_at_ms is not None:
                raise AlreadyEnrolled("two-factor is already on: disable it first")
            if row is not None:
                await s.delete(row)
                await s.flush()
            s.add(TotpFactorRow(user_id=user.id, secret=secret, created_at_ms=now, confirmed_at_ms=None,
                                last_step=0))
            await s.commit()
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.email or user.id, issuer_name=ISSUER_NAME)
        return secret, uri

    async def confirm(self, user_id: str, code: str) -> list[str]:
        """Turn the pending secret on with a first code; the recovery codes, shown this once."""
        now = self.accounts.clock.now_ms()
        codes = [secrets.token_hex(10) for _ in range(RECOVERY_CODES)]
        async with self.accounts.sessions() as s:
            row = await s.get(TotpFactorRow, user_id)
            if row is None or row.confirmed_at_ms is not None:
                raise SecondFactorError("code", "nothing to confirm: enrol first")
            step = matching_step(row.secret, code, now // 1000)
            if step is None:
                raise SecondFactorError("code", "wrong code: check the authenticator's clock")
            row.confirmed_at_ms, row.last_step = now, step
            await s.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))
            s.add_all(RecoveryCodeRow(code_hash=hash_token(c), user_id=user_id) for c in codes)
            s.add(self.accounts.audit.entry("auth.totp_enabled", actor_id=user_id, target_type="user",
                                            target_id=user_id))
            await s.commit()
        return codes

    async def disable(self, user_id: str, code: str) -> None:
        """Turn two-factor off; proving it is you takes a current code or a recovery code."""
        async with self.accounts.sessions() as s:
            await self._spend_code(s, user_id, code)
            await s.execute(delete(TotpFactorRow).where(TotpFactorRow.user_id == user_id))
            await s.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))
            s.add(self.accounts.audit.entry("auth.totp_disabled", actor_id=user_id, target_type="user",
                                            target_id=user_id))
            await s.commit()

    async def _spend_code(self, s: AsyncSession, user_id: str, code: str) -> None:
        """Accept a TOTP code (once per step) or spend a recovery code; SecondFactorError otherwise."""
        now = self.accounts.clock.now_ms()
        row = await s.get(TotpFactorRow, user_id)
        if row is None or row.confirmed_at_ms is None:
            raise SecondFactorError("code", "two-factor is not on for this account")
        if len(code) == 6 and code.isdigit():
            step = matching_step(row.secret, code, now // 1000)
            if step is None or step <= row.last_step:
                raise SecondFactorError("code", "wrong or already used code")
            spent = await s.execute(update(TotpFactorRow).where(TotpFactorRow.user_id == user_id,
                                                                TotpFactorRow.last_step < step)
                                    .values(last_step=step))
        else:
            spent = await s.execute(update(RecoveryCodeRow).where(
                RecoveryCodeRow.code_hash == hash_token(code.strip().lower()), RecoveryCodeRow.user_id == user_id,
                RecoveryCodeRow.used_at_ms.is_(None)).values(used_at_ms=now))
        if spent.rowcount != 1:  # type: ignore[attr-defined]
            raise SecondFactorError("code", "wrong or already used code")

    def challenge(self, user_id: str) -> str:
        now_s = self._now_s()
        payload = {"sub": user_id, "typ": "second_factor", "iss": JWT_ISSUER, "aud": CHALLENGE_AUDIENCE,
                   "iat": now_s, "exp": now_s + CHALLENGE_TTL_S}
        return jwt.encode(payload, self.accounts.settings.jwt_secret_key.get_secret_value(), algorithm=JWT_ALGORITHM)

    def challenge_user(self, challenge: str) -> str:
        """The id of the user a live challenge was issued to (SecondFactorError otherwise)."""
        try:
            payload: dict[str, Any] = jwt.decode(
                challenge, self.accounts.settings.jwt_secret_key.get_secret_value(), algorithms=[JWT_ALGORITHM],
                audience=CHALLENGE_AUDIENCE, issuer=JWT_ISSUER,
                options={"require": ["sub", "exp", "typ"], "verify_exp": False, "verify_iat": False})
        except jwt.PyJWTError:
            raise SecondFactorError("challenge", "invalid challenge: sign in again") from None
        if payload["typ"] != "second_factor" or not isinstance(payload["exp"], int) or self._now_s() >= payload["exp"]:
            raise SecondFactorError("challenge", "the challenge has expired: sign in again")
        return str(payload["sub"])

    async def complete(self, challenge: str, code: str, client: str | None) -> UserRow:
        """The user a challenge was issued to, once its code checks out. Wrong codes count as failed sign-ins (per
        account and client), so a million guesses at six digits cost time, not just requests."""
        user_id = self.challenge_user(challenge)
        keys = {"account": f"2fa:{user_id}", "client": client or "unknown"}
        await self.accounts.check_signin_allowed(keys)
        async with self.accounts.sessions() as s:
            try:
                await self._spend_code(s, user_id, code)
            except SecondFactorError as exc:
                await s.rollback()  # counted below, on a connection of its own, with this one's writes undone
                failed: SecondFactorError | None = exc
            else:
                failed = None
            user = await s.get(UserRow, user_id)
            if failed is not None:
                await s.close()
                await self.accounts.count_signin_failure(keys, user, client, factor="totp")
                raise failed
            if user is None:
                raise SecondFactorError("challenge", "invalid challenge: sign in again")
            await s.commit()
        return user
