"""Brute-force protection for sign-in: each failure spaces the next attempt out, and enough failures lock.

Per account (its casefolded address, known or not, so answers don't tell whether it exists) and per client address,
failures in a row are counted. After the n-th, the next attempt must wait 2^(n-1) s (1, 2, 4, 8… s; answered with
429 and `Retry-After` before that, right password or not), never longer than the window. At the limit (the count of
`PULSE_SIGNIN_FAILURE_LIMIT` for an account, `PULSE_SIGNIN_CLIENT_FAILURE_LIMIT` for a client) the subject is
locked for the window; an account's lock is also lifted by the link mailed to its owner. Failures older than the
window are forgotten; a successful sign-in clears the account's count. Times come from the injected clock; the
counts live in the database, so every API process sees the same ones.

`refusal` and `after_failure` are the pure rules; `SigninGuard` keeps the counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from limits import parse
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.accounts.core import hash_token
from marketpulse.accounts.tables import SigninFailureRow
from marketpulse.clock import Clock

ACCOUNT, CLIENT = "account", "client"


@dataclass(frozen=True)
class Rule:
    limit: int  # failures in a row that lock the subject
    window_ms: int  # how long a lock lasts, and after how long without a failure the count is forgotten

    @classmethod
    def parse(cls, text: str) -> Rule:
        """From `limits` notation: "5/15minutes" locks at 5 failures, for 15 minutes."""
        item = parse(text)
        return cls(item.amount, item.get_expiry() * 1000)


@dataclass(frozen=True)
class Attempts:
    failures: int
    last_failed_at_ms: int
    locked_at_ms: int | None = None


@dataclass(frozen=True)
class Refusal:
    retry_after_s: int
    locked: bool  # False: only the delay after the last failure has not passed yet


def live(attempts: Attempts | None, now_ms: int, rule: Rule) -> Attempts | None:
    """The attempts still counting at `now_ms` (None once forgotten, or when a lock has run out)."""
    if attempts is None:
        return None
    since = attempts.locked_at_ms if attempts.locked_at_ms is not None else attempts.last_failed_at_ms
    return attempts if now_ms - since < rule.window_ms else None


def delay_ms(failures: int, rule: Rule) -> int:
    return min(2 ** (failures - 1) * 1000, rule.window_ms) if failures > 0 else 0


def refusal(attempts: Attempts | None, now_ms: int, rule: Rule) -> Refusal | None:
    current = live(attempts, now_ms, rule)
    if current is None:
        return None
    if current.locked_at_ms is not None:
        return Refusal(math.ceil((current.locked_at_ms + rule.window_ms - now_ms) / 1000), locked=True)
    wait = current.last_failed_at_ms + delay_ms(current.failures, rule) - now_ms
    return Refusal(math.ceil(wait / 1000), locked=False) if wait > 0 else None


def after_failure(attempts: Attempts | None, now_ms: int, rule: Rule) -> Attempts:
    current = live(attempts, now_ms, rule)
    failures = (current.failures if current else 0) + 1
    locked = current.locked_at_ms if current else None
    if locked is None and failures >= rule.limit:
        locked = now_ms
    return Attempts(failures, now_ms, locked)


def subject_hash(subject: str) -> str:
    return hash_token(subject)  # the table holds no address


class SigninGuard:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    async def refusal(self, subjects: Mapping[str, str], rules: Mapping[str, Rule]) -> tuple[str, Refusal] | None:
        """The first of `subjects` ({kind: subject}) that may not try now, and why."""
        now = self.clock.now_ms()
        async with self.sessions() as s:
            for kind, subject in subjects.items():
                row = await s.get(SigninFailureRow, (kind, subject_hash(subject)))
                found = refusal(_attempts(row), now, rules[kind])
                if found is not None:
                    return kind, found
        return None

    async def fail(self, subjects: Mapping[str, str],
                   rules: Mapping[str, Rule]) -> dict[str, tuple[Attempts | None, Attempts]]:
        """Count a failure for each subject; per kind, the live attempts before and after it."""
        try:
            return await self._fail(subjects, rules)
        except IntegrityError:  # another process counted a first failure at the same time: count on its row
            return await self._fail(subjects, rules)

    async def _fail(self, subjects: Mapping[str, str],
                    rules: Mapping[str, Rule]) -> dict[str, tuple[Attempts | None, Attempts]]:
        now = self.clock.now_ms()
        out = {}
        async with self.sessions() as s:
            for kind, subject in subjects.items():
                row = await s.get(SigninFailureRow, (kind, subject_hash(subject)), with_for_update=True)
                before = live(_attempts(row), now, rules[kind])
                after = after_failure(before, now, rules[kind])
                if row is None:
                    row = SigninFailureRow(kind=kind, subject_hash=subject_hash(subject))
                    s.add(row)
                row.failures, row.last_failed_at_ms, row.locked_at_ms = (after.failures, after.last_failed_at_ms,
                                                                         after.locked_at_ms)
                out[kind] = (before, after)
            await s.commit()
        return out

    async def clear(self, s: AsyncSession, kind: str, subjects: Iterable[str]) -> None:
        """Forget the subjects' failures (and lift their lock), in the caller's transaction."""
        hashes = [subject_hash(x) for x in subjects]
        if hashes:
            await s.execute(delete(SigninFailureRow).where(SigninFailureRow.kind == kind,
                                                           SigninFailureRow.subject_hash.in_(hashes)))


def _attempts(row: SigninFailureRow | None) -> Attempts | None:
    return None if row is None else Attempts(row.failures, row.last_failed_at_ms, row.locked_at_ms)
