"""The pure rules of accounts: password policy, email keys, one-time tokens, access-token claims. No I/O; time is
passed in (milliseconds), so token expiry is tested with a fake clock.

Access tokens are JWTs signed with HS256 and decoded with that one algorithm only: a token whose header names
another algorithm (`none`, RS256 signed with our secret as a "public key", HS512…) is refused before its claims are
read. PyJWT checks `exp` against the real wall clock, so it is told not to, and expiry is judged here against the
injected clock instead.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt

JWT_ALGORITHM = "HS256"  # pinned: the only algorithm accepted on decode
JWT_ISSUER = "marketpulse"
JWT_AUDIENCE = "marketpulse-api"
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256  # argon2 accepts more, but a megabyte "password" is only a way to burn CPU
SPECIALS = set(string.punctuation) | {" "}


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class Status(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    BANNED = "banned"


# Not a stored status: what an account-change announcement says of an erased user (their connections close).
DELETED = "deleted"


class TokenPurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"
    UNLOCK_ACCOUNT = "unlock_account"


def password_problems(password: str) -> list[str]:
    """What the password lacks under the seed's rule (12+ characters, an upper-case letter, a digit, a special
    character); empty when it passes."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"at most {MAX_PASSWORD_LENGTH} characters")
    if not any(c.isupper() for c in password):
        problems.append("an upper-case letter")
    if not any(c.isdigit() for c in password):
        problems.append("a digit")
    if not any(c in SPECIALS or not c.isalnum() for c in password):
        problems.append("a special character")
    return problems


def email_key(email: str) -> str:
    """The case-insensitive identity of an address: two spellings that differ only in case are one account."""
    return email.strip().casefold()


def new_secret_token() -> str:
    """A URL-safe one-time token (256 bits): verification and reset links, refresh tokens."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """How a token is stored. The tokens are random and long, so a fast hash is enough (unlike passwords): a
    database leak yields nothing usable."""
    return hashlib.sha256(token.encode()).hexdigest()


class InvalidToken(Exception):
    """An access token that is malformed, tampered with, of another algorithm or audience, or expired."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str
    issued_at_ms: int
    expires_at_ms: int


def encode_access_token(claims: AccessClaims, secret: str) -> str:
    payload = {
        "sub": claims.user_id, "sid": claims.session_id, "typ": "access",
        "iss": JWT_ISSUER, "aud": JWT_AUDIENCE,
        "iat": claims.issued_at_ms // 1000, "exp": claims.expires_at_ms // 1000,
    }
    return jwt.encode(payload, secret, algorithm=JWT_ALGORITHM)


def decode_access_token(token: str, secret: str, now_ms: int) -> AccessClaims:
    try:
        payload: dict[str, Any] = jwt.decode(
            token, secret, algorithms=[JWT_ALGORITHM], audience=JWT_AUDIENCE, issuer=JWT_ISSUER,
            options={"require": ["sub", "sid", "iat", "exp", "typ"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"invalid access token: {exc}") from None
    if payload["typ"] != "access" or not isinstance(payload["sub"], str) or not isinstance(payload["sid"], str):
        raise InvalidToken("invalid access token: not an access token")
    exp, iat = payload["exp"], payload["iat"]
    if not isinstance(exp, int) or not isinstance(iat, int):
        raise InvalidToken("invalid access token: exp and iat must be integers")
    if now_ms >= exp * 1000:
        raise InvalidToken("access token expired")
    return AccessClaims(payload["sub"], payload["sid"], iat * 1000, exp * 1000)
