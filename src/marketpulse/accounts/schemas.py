"""Request and response bodies of the accounts API. A password that breaks the rule is a 422 naming its field;
error bodies never echo a password or token back (see `api.errors.SECRET_FIELDS`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from marketpulse.accounts.core import MAX_PASSWORD_LENGTH, password_problems
from marketpulse.accounts.plans import plan_named
from marketpulse.accounts.tables import UserRow, WalletRow
from marketpulse.accounts.wallets import wallet_json


def _strong(password: str) -> str:
    problems = password_problems(password)
    if problems:
        raise ValueError("the password needs " + ", ".join(problems))
    return password


NewPassword = Annotated[str, AfterValidator(_strong)]
AnyPassword = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
Token = Annotated[str, Field(min_length=1, max_length=512)]
Email = Annotated[EmailStr, Field(max_length=320)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignupBody(_Body):
    email: Email
    password: NewPassword


class SigninBody(_Body):
    email: Email
    password: AnyPassword


class EmailBody(_Body):
    email: Email


class TokenBody(_Body):
    token: Token


class ResetPasswordBody(_Body):
    token: Token
    new_password: NewPassword


class ChangePasswordBody(_Body):
    current_password: AnyPassword
    new_password: NewPassword


class RefreshBody(_Body):
    refresh_token: Token | None = None  # else the refresh cookie


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class Me(BaseModel):
    id: str
    email: str | None  # None: an account made by signing in with a wallet
    plan: str
    role: str
    status: str
    email_verified: bool
    created_at_ms: int
    wallets: list[dict[str, Any]]
    passkeys: int = 0  # how many passkeys the user has registered
    two_factor: bool = False  # TOTP confirmed and on


class Accepted(BaseModel):
    detail: str


def me_json(user: UserRow, wallets: Sequence[WalletRow] = (), *, passkeys: int = 0, two_factor: bool = False) -> Me:
    return Me(id=user.id, email=user.email, plan=plan_named(user.plan).name, role=user.role, status=user.status,
              email_verified=user.verified_at_ms is not None, created_at_ms=user.created_at_ms,
              wallets=[wallet_json(w) for w in wallets], passkeys=passkeys, two_factor=two_factor)


# Answers the routes give besides their success and 422, for the OpenAPI document (clients and the fuzz test).
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not signed in, or the access token is invalid, expired or its session has ended"},
    403: {"description": "The account is suspended or banned, or a cookie-authenticated request lacks its CSRF "
                         "header"},
}
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many requests for this address or client: wait `Retry-After` seconds"},
}
