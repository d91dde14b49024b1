"""The accounts API: the plan table and email/password sign-in.

    GET  /api/v1/plans                         the one plan table (every limit and price per plan)
    POST /api/v1/auth/signup                   {email, password} → 201 the user; a verification link is mailed
    POST /api/v1/auth/signin                   {email, password} → {access_token, refresh_token, token_type,
                                               expires_in} and the browser's cookies
    POST /api/v1/auth/refresh                  {refresh_token} or the refresh cookie → a new pair (rotation)
    POST /api/v1/auth/signout                  ends this session
    POST /api/v1/auth/verify-email             {token}
    POST /api/v1/auth/unlock                   {token}: lifts the lock set after too many failed sign-ins
    POST /api/v1/auth/resend-verification      {email} → 202 whether or not the address has an account
    POST /api/v1/auth/request-password-reset   {email} → 202 whether or not the address has an account
    POST /api/v1/auth/reset-password           {token, new_password}: every session ends
    POST /api/v1/auth/change-password          {current_password, new_password}: the other sessions end
    GET  /api/v1/auth/me                       id, email, plan, role, status, wallets
    POST /api/v1/auth/siwe/nonce               → {nonce, domain, uri, chain_ids}: what an EIP-4361 message must name
    POST /api/v1/auth/siwe/verify              {message, signature} → signs the wallet's user in like /signin, or,
                                               with a signed-in session, links the wallet to it (→ the user)
    POST /api/v1/auth/solana/nonce             → {nonce, message}: the exact text a Solana wallet signs
    POST /api/v1/auth/solana/verify            {public_key, nonce, signature} (base58) → as siwe/verify
    POST /api/v1/auth/signin/second-factor     {challenge, code} or {challenge, credential}: finishes a sign-in that
                                               answered 403 second_factor_required (TOTP code, recovery code or a
                                               passkey assertion)
    POST /api/v1/account/two-factor/enrol      → {secret, otpauth_uri}; /confirm {code} → {recovery_codes};
                                               /disable {code}

Scripts send `Authorization: Bearer <access_token>`. Browsers get HttpOnly cookies (Secure over HTTPS,
SameSite) plus a readable CSRF cookie: a state-changing request authenticated by cookie must echo it in
`X-CSRF-Token` (double submit), so another site can't make the browser act for the user.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal, cast

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, ConfigDict, Field, model_validator

from marketpulse.accounts.api_keys import Scope, TooManyKeys, key_json
from marketpulse.accounts.core import InvalidToken
from marketpulse.accounts.passkeys import PasskeyRefused
from marketpulse.accounts.plans import CHANNEL_CREDIT_COSTS, plans_json
from marketpulse.accounts.schemas import (
    RATE_LIMITED,
    UNAUTHORIZED,
    Accepted,
    ChangePasswordBody,
    EmailBody,
    Me,
    RefreshBody,
    ResetPasswordBody,
    SigninBody,
    SignupBody,
    TokenBody,
    TokenPair,
    me_json,
)
from marketpulse.accounts.service import (
    AccountNotActive,
    AccountsService,
    BadCredentials,
    EmailNotVerified,
    EmailTaken,
    EraseRefused,
    InvalidEmailToken,
    InvalidRefreshToken,
    Principal,
    RateLimited,
    Tokens,
)
from marketpulse.accounts.totp import AlreadyEnrolled, SecondFactorError
from marketpulse.accounts.wallets import ETHEREUM, SOLANA, WalletRefused, WalletTaken, solana_message
from marketpulse.api.pages import Page, page
from marketpulse.ratelimit.middleware import PRINCIPAL_STATE

router = APIRouter()

ACCESS_COOKIE = "mp_access"
REFRESH_COOKIE = "mp_refresh"
CSRF_COOKIE = "mp_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
MAIL_ACCEPTED = "if the address has an account that needs it, a mail is on its way"

BEARER = HTTPBearer(auto_error=False, description="An access token from POST /api/v1/auth/signin")


def get_accounts(request: Request) -> AccountsService:
    """The process's accounts service, built once with the runtime's services (see `marketpulse.services`)."""
    accounts: AccountsService = request.app.state.runtime.services.accounts
    return accounts


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": "Bearer"})


def _not_active(exc: AccountNotActive) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail={"reason": f"account_{exc.status}", "message": str(exc)})


def _check_csrf(request: Request) -> None:
    cookie, header = request.cookies.get(CSRF_COOKIE), request.headers.get(CSRF_HEADER)
    if request.method not in SAFE_METHODS and not (cookie and header and secrets.compare_digest(cookie, header)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail={
            "reason": "csrf", "message": f"a cookie-authenticated {request.method} needs the {CSRF_HEADER} header "
                                         f"carrying the {CSRF_COOKIE} cookie's value"})


async def current_user(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(BEARER),
                       accounts: AccountsService = Depends(get_accounts)) -> Principal:
    """FastAPI dependency: the signed-in user (Bearer token, else the access cookie) or 401."""
    return await request_principal(request, credentials.credentials if credentials is not None else None, accounts)


async def request_principal(request: Request, bearer: str | None = None,
                            accounts: AccountsService | None = None) -> Principal:
    """The user a request acts for: its Bearer token (or API key), else its access cookie (plus the CSRF header on
    a state-changing method); 401 when it carries neither."""
    if bearer is None:
        scheme, value = get_authorization_scheme_param(request.headers.get("Authorization"))
        bearer = value if value and scheme.lower() == "bearer" else None
    if bearer is not None:
        token = bearer
    elif (cookie := request.cookies.get(ACCESS_COOKIE)) is not None:
        _check_csrf(request)
        token = cookie
    else:
        raise _unauthorized("sign in first: send Authorization: Bearer <access token> (or the session cookie)")
    return await principal_for_token(request, token, accounts)


async def principal_for_token(request: Request, token: str, accounts: AccountsService | None = None) -> Principal:
    """The user an access token acts for; 401 when it is invalid or its session ended, 403 when the account is
    suspended or banned."""
    cached = getattr(request.state, PRINCIPAL_STATE, None)  # the rate limiter already looked it up
    if cached is not None and cached[0] == token:
        return cast(Principal, cached[1])
    try:
        return await (accounts or get_accounts(request)).principal(token)
    except InvalidToken as exc:
        raise _unauthorized(str(exc)) from None
    except AccountNotActive as exc:
        raise _not_active(exc) from None


# What a read that knows its caller (`caller_plan`) may answer besides its own statuses.
CALLER_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "A Bearer token or API key was sent but is invalid or its session has ended"},
    403: {"description": "The account is suspended or banned, or the API key lacks the `read` scope"},
}


async def principal_from_request(request: Request) -> Principal | None:
    """The caller of a read, or None when anonymous: `Authorization: Bearer` (an access token, or a personal API
    key with the `read` scope), else the session cookie. No CSRF check: a read changes nothing.

    A Bearer credential that is invalid or ended is refused (401/403), never quietly anonymous: a script should
    know. A cookie that no longer works (its session ended, the account was suspended) is the anonymous view, so a
    browser's stale cookie shows the public page rather than an error."""
    scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
    if token and scheme.lower() == "bearer":
        principal = await principal_for_token(request, token)
        require_scope(request, principal)
        return principal
    cookie = request.cookies.get(ACCESS_COOKIE)
    if not cookie:
        return None
    try:
        return await get_accounts(request).principal(cookie)
    except (InvalidToken, AccountNotActive):
        return None


async def caller_plan(request: Request) -> str | None:
    """FastAPI dependency: the plan of the request's caller (see `principal_from_request`); None: anonymous."""
    principal = await principal_from_request(request)
    return principal.user.plan if principal is not None else None


async def session_user(principal: Principal = Depends(current_user)) -> Principal:
    """FastAPI dependency: a signed-in session (not an API key): for the password, sign-out, keys, admin."""
    if principal.session_id is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail={
            "reason": "session_required", "message": "an API key can't do this: sign in with email and password"})
    return principal


def require_scope(request: Request, principal: Principal, scope: str | None = None) -> None:
    """An API key may read with `read` and change things (POST, PATCH, DELETE…) with `scope` (default `trade`)."""
    needed = "read" if request.method in SAFE_METHODS else (scope or "trade")
    if not principal.allows(needed):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail={
            "reason": "scope", "message": f"this API key lacks the {needed!r} scope", "scope": needed})


def _too_many(exc: RateLimited) -> HTTPException:
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail=str(exc),
                         headers={"Retry-After": str(exc.retry_after_s)})


def _field_error(field: str, message: str, value: Any = None) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error", "input": value}])


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _set_session_cookies(request: Request, response: Response, tokens: Tokens, refresh_max_age: int) -> None:
    secure = request.url.scheme == "https"
    response.set_cookie(ACCESS_COOKIE, tokens.access_token, max_age=tokens.expires_in, httponly=True, secure=secure,
                        samesite="lax", path="/")
    response.set_cookie(REFRESH_COOKIE, tokens.refresh_token, max_age=refresh_max_age, httponly=True, secure=secure,
                        samesite="strict", path="/api/v1/auth")
    response.set_cookie(CSRF_COOKIE, secrets.token_urlsafe(24), max_age=refresh_max_age, httponly=False,
                        secure=secure, samesite="strict", path="/")


def _clear_session_cookies(response: Response) -> None:
    response.delete_cookie(ACCESS_COOKIE, path="/")
    response.delete_cookie(REFRESH_COOKIE, path="/api/v1/auth")
    response.delete_cookie(CSRF_COOKIE, path="/")


def _pair(tokens: Tokens) -> TokenPair:
    return TokenPair(access_token=tokens.access_token, refresh_token=tokens.refresh_token,
                     expires_in=tokens.expires_in)


@router.get("/api/v1/plans", tags=["accounts"])
async def list_plans() -> dict[str, Any]:
    """`data`: every plan with its limits and prices; `channel_credit_costs`: credits per notification by channel."""
    return {"data": plans_json(), "next": None, "channel_credit_costs": dict(CHANNEL_CREDIT_COSTS)}


@router.post("/api/v1/auth/signup", status_code=status.HTTP_201_CREATED, response_model=Me, tags=["auth"],
             responses={409: {"description": "An account with this address exists (any case)"}})
async def signup(body: SignupBody, accounts: AccountsService = Depends(get_accounts)) -> Me:
    try:
        user = await accounts.signup(body.email, body.password)
    except EmailTaken as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=[
            {"loc": ["body", "email"], "msg": str(exc), "type": "email_taken"}]) from None
    return me_json(user)


@router.post("/api/v1/auth/signin", response_model=TokenPair, tags=["auth"], responses={
    401: {"description": "Wrong email or password"},
    403: {"description": "The address is not verified yet, or the account is suspended or banned"},
    429: {"description": "Too many failed sign-ins for this address or client: wait `Retry-After` seconds (it doubles "
                         "with each failure; past the limit the account is locked until then or until the mailed "
                         "unlock link is followed)"}})
async def signin(body: SigninBody, request: Request, response: Response,
                 accounts: AccountsService = Depends(get_accounts)) -> TokenPair:
    try:
        user = await accounts.authenticate(body.email, body.password, _client(request))
    except BadCredentials as exc:
        raise _unauthorized(str(exc)) from None
    except RateLimited as exc:
        raise _too_many(exc) from None
    except AccountNotActive as exc:
        raise _not_active(exc) from None
    except EmailNotVerified as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail={"reason": "email_not_verified", "message": str(exc)}) from None
    if await accounts.needs_second_factor(user.id):
        raise await second_factor_required(user.id, accounts)
    tokens = await accounts.start_session(user, _client(request))
    _set_session_cookies(request, response, tokens, accounts.settings.refresh_token_ttl_s)
    return _pair(tokens)


async def second_factor_required(user_id: str, accounts: AccountsService) -> HTTPException:
    """The first factor held; a 403 with a challenge that a TOTP code or a passkey assertion turns into a session.
    With a passkey registered it also holds the PublicKeyCredentialRequestOptions to answer."""
    methods = (["totp"] if await accounts.totp.enabled(user_id) else [])
    detail: dict[str, Any] = {"reason": "second_factor_required", "challenge": accounts.totp.challenge(user_id)}
    passkey_options = await accounts.passkeys.second_factor_options(user_id)
    if passkey_options is not None:
        methods.append("passkey")
        detail["passkey_options"] = passkey_options
    detail["methods"] = methods
    detail["message"] = ("send the challenge with your authenticator's code (or a recovery code), or with a passkey "
                         "assertion as `credential`, to POST /api/v1/auth/signin/second-factor")
    return HTTPException(status.HTTP_403_FORBIDDEN, detail=detail)


class SecondFactorBody(BaseModel):
    """`challenge` and one of: `code` (TOTP or recovery code) or `credential` (a passkey assertion answering the
    `passkey_options` of the 403)."""

    model_config = ConfigDict(extra="forbid")

    challenge: str = Field(min_length=1, max_length=2048)
    code: str | None = Field(None, min_length=6, max_length=32, pattern=r"^[0-9A-Fa-f ]+$")
    credential: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_proof(self) -> SecondFactorBody:
        if (self.code is None) == (self.credential is None):
            raise ValueError("send either code or credential (a passkey assertion), not both or neither")
        return self


@router.post("/api/v1/auth/signin/second-factor", response_model=TokenPair, tags=["auth"], responses={
    403: {"description": "The account is suspended or banned"},
    429: {"description": "Too many wrong codes for this account or client: wait `Retry-After` seconds"}})
async def signin_second_factor(body: SecondFactorBody, request: Request, response: Response,
                               accounts: AccountsService = Depends(get_accounts)) -> TokenPair:
    """Finish a password sign-in that answered `second_factor_required`: the challenge and a code."""
    try:
        if body.credential is not None:
            user = await accounts.passkeys.second_factor(accounts.totp.challenge_user(body.challenge),
                                                         body.credential)
        else:
            assert body.code is not None
            user = await accounts.totp.complete(body.challenge, body.code.replace(" ", ""), _client(request))
    except (SecondFactorError, PasskeyRefused) as exc:
        raise _field_error(exc.field, str(exc)) from None
    except RateLimited as exc:
        raise _too_many(exc) from None
    except AccountNotActive as exc:
        raise _not_active(exc) from None
    if user.status != "active":
        raise _not_active(AccountNotActive(user.status))
    tokens = await accounts.start_session(user, _client(request))
    _set_session_cookies(request, response, tokens, accounts.settings.refresh_token_ttl_s)
    return _pair(tokens)


class CodeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=6, max_length=32, pattern=r"^[0-9A-Fa-f ]+$")


@router.post("/api/v1/account/two-factor/enrol", tags=["account"],
             responses={**UNAUTHORIZED, 409: {"description": "Two-factor is already on"}})
async def two_factor_enrol(principal: Principal = Depends(session_user),
                           accounts: AccountsService = Depends(get_accounts)) -> dict[str, str]:
    """A new TOTP secret for your authenticator app (`otpauth_uri` is what a QR code carries); confirm it next."""
    try:
        secret, uri = await accounts.totp.enrol(principal.user)
    except AlreadyEnrolled as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return {"secret": secret, "otpauth_uri": uri}


@router.post("/api/v1/account/two-factor/confirm", tags=["account"], responses=UNAUTHORIZED)
async def two_factor_confirm(body: CodeBody, principal: Principal = Depends(session_user),
                             accounts: AccountsService = Depends(get_accounts)) -> dict[str, list[str]]:
    """Turn two-factor on with a first code; the answer holds the recovery codes, shown this once."""
    try:
        return {"recovery_codes": await accounts.totp.confirm(principal.user.id, body.code.replace(" ", ""))}
    except SecondFactorError as exc:
        raise _field_error(exc.field, str(exc)) from None


@router.post("/api/v1/account/two-factor/disable", status_code=status.HTTP_204_NO_CONTENT, tags=["account"],
             responses=UNAUTHORIZED)
async def two_factor_disable(body: CodeBody, principal: Principal = Depends(session_user),
                             accounts: AccountsService = Depends(get_accounts)) -> Response:
    """Turn two-factor off: a current code or a recovery code proves it is you."""
    try:
        await accounts.totp.disable(principal.user.id, body.code.replace(" ", ""))
    except SecondFactorError as exc:
        raise _field_error(exc.field, str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/api/v1/auth/refresh", response_model=TokenPair, tags=["auth"], responses=UNAUTHORIZED)
async def refresh(request: Request, response: Response, body: RefreshBody | None = None,
                  accounts: AccountsService = Depends(get_accounts)) -> TokenPair:
    token = body.refresh_token if body is not None else None
    if token is None:
        token = request.cookies.get(REFRESH_COOKIE)
        if token is None:
            raise _field_error("refresh_token", "send refresh_token (or the refresh cookie)")
        _check_csrf(request)
    try:
        tokens = await accounts.refresh(token)
    except InvalidRefreshToken as exc:
        _clear_session_cookies(response)
        raise _unauthorized(str(exc)) from None
    except AccountNotActive as exc:
        raise _not_active(exc) from None
    _set_session_cookies(request, response, tokens, accounts.settings.refresh_token_ttl_s)
    return _pair(tokens)


@router.post("/api/v1/auth/signout", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"], responses=UNAUTHORIZED)
async def signout(principal: Principal = Depends(session_user),
                  accounts: AccountsService = Depends(get_accounts)) -> Response:
    assert principal.session_id is not None
    await accounts.signout(principal.session_id)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    _clear_session_cookies(response)
    return response


@router.post("/api/v1/auth/verify-email", response_model=Me, tags=["auth"])
async def verify_email(body: TokenBody, accounts: AccountsService = Depends(get_accounts)) -> Me:
    try:
        return me_json(await accounts.verify_email(body.token))
    except InvalidEmailToken as exc:
        raise _field_error("token", str(exc)) from None


@router.post("/api/v1/auth/unlock", response_model=Accepted, tags=["auth"])
async def unlock(body: TokenBody, accounts: AccountsService = Depends(get_accounts)) -> Accepted:
    """Lift the sign-in lock set after too many failed sign-ins, with the token of the mailed link (once)."""
    try:
        await accounts.unlock(body.token)
    except InvalidEmailToken as exc:
        raise _field_error("token", str(exc)) from None
    return Accepted(detail="account unlocked: you can sign in again")


async def _mail_request(kind: str, body: EmailBody, request: Request, accounts: AccountsService) -> Accepted:
    try:
        if kind == "verify":
            await accounts.resend_verification(body.email, _client(request))
        else:
            await accounts.request_password_reset(body.email, _client(request))
    except RateLimited as exc:
        raise _too_many(exc) from None
    return Accepted(detail=MAIL_ACCEPTED)


@router.post("/api/v1/auth/resend-verification", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted,
             tags=["auth"], responses=RATE_LIMITED)
async def resend_verification(body: EmailBody, request: Request,
                              accounts: AccountsService = Depends(get_accounts)) -> Accepted:
    return await _mail_request("verify", body, request, accounts)


@router.post("/api/v1/auth/request-password-reset", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted,
             tags=["auth"], responses=RATE_LIMITED)
async def request_password_reset(body: EmailBody, request: Request,
                                 accounts: AccountsService = Depends(get_accounts)) -> Accepted:
    return await _mail_request("reset", body, request, accounts)


@router.post("/api/v1/auth/reset-password", response_model=Accepted, tags=["auth"])
async def reset_password(body: ResetPasswordBody, response: Response,
                         accounts: AccountsService = Depends(get_accounts)) -> Accepted:
    try:
        await accounts.reset_password(body.token, body.new_password)
    except InvalidEmailToken as exc:
        raise _field_error("token", str(exc)) from None
    _clear_session_cookies(response)
    return Accepted(detail="password changed: every session has ended, sign in with the new password")


@router.post("/api/v1/auth/change-password", response_model=Accepted, tags=["auth"], responses=UNAUTHORIZED)
async def change_password(body: ChangePasswordBody, principal: Principal = Depends(session_user),
                          accounts: AccountsService = Depends(get_accounts)) -> Accepted:
    try:
        await accounts.change_password(principal, body.current_password, body.new_password)
    except BadCredentials as exc:
        raise _field_error("current_password", str(exc)) from None
    return Accepted(detail="password changed: your other sessions have ended")


@router.get("/api/v1/auth/me", response_model=Me, tags=["auth"], responses=UNAUTHORIZED)
async def me(principal: Principal = Depends(current_user), accounts: AccountsService = Depends(get_accounts)) -> Me:
    user_id = principal.user.id
    return me_json(principal.user, await accounts.wallets.of_user(user_id),
                   passkeys=await accounts.passkeys.count(user_id), two_factor=await accounts.totp.enabled(user_id))


class NewApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00]*$")
    scopes: list[Scope] = Field(min_length=1, max_length=3)


@router.post("/api/v1/account/api-keys", status_code=status.HTTP_201_CREATED, tags=["account"],
             responses={**UNAUTHORIZED, 409: {"description": "Too many live keys: revoke one first"}})
async def create_api_key(body: NewApiKey, principal: Principal = Depends(session_user),
                         accounts: AccountsService = Depends(get_accounts)) -> dict[str, Any]:
    """A new personal API key; `key` is in this answer only (it is stored hashed)."""
    try:
        row, key = await accounts.api_keys.create(principal.user.id, body.name, body.scopes)
    except TooManyKeys as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return {**key_json(row), "key": key}


@router.get("/api/v1/account/api-keys", tags=["account"], responses=UNAUTHORIZED, response_model=Page[dict[str, Any]])
async def list_api_keys(principal: Principal = Depends(session_user),
                        accounts: AccountsService = Depends(get_accounts)) -> Page[dict[str, Any]]:
    return page([key_json(r) for r in await accounts.api_keys.live(principal.user.id)])


@router.delete("/api/v1/account/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["account"],
               responses={**UNAUTHORIZED, 404: {"description": "You have no such key"}})
async def revoke_api_key(key_id: str, principal: Principal = Depends(session_user),
                         accounts: AccountsService = Depends(get_accounts)) -> Response:
    if not await accounts.api_keys.revoke(principal.user.id, key_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no API key {key_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class EraseBody(BaseModel):
    """An account with a password confirms with it; one without (made by a wallet) with `confirm: "DELETE"` from
    a session signed in within the last 10 minutes (`RECENT_SIGNIN_S`)."""

    model_config = ConfigDict(extra="forbid")

    password: str | None = Field(None, min_length=1, max_length=256)
    confirm: Literal["DELETE"] | None = None


@router.get("/api/v1/account/export", tags=["account"], responses=UNAUTHORIZED)
async def export_account(principal: Principal = Depends(session_user),
                         accounts: AccountsService = Depends(get_accounts)) -> dict[str, Any]:
    """Everything you own (account, sessions, API keys, paper trading, backtest jobs) as one JSON document."""
    return await accounts.export(principal.user.id)


@router.delete("/api/v1/account", status_code=status.HTTP_204_NO_CONTENT, tags=["account"], responses=UNAUTHORIZED)
async def erase_account(body: EraseBody, principal: Principal = Depends(session_user),
                        accounts: AccountsService = Depends(get_accounts)) -> Response:
    """Delete your account and everything it owns, for good: `{password}` confirms it is you, or, for an account
    without a password (a wallet's), `{confirm: "DELETE"}` from a recent sign-in."""
    try:
        await accounts.erase(principal, body.password, confirmed=body.confirm == "DELETE")
    except EraseRefused as exc:
        raise _field_error(exc.field, str(exc)) from None
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    _clear_session_cookies(response)
    return response


# --- wallets ---

WALLET_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "A Bearer token or cookie was sent but is invalid or its session has ended"},
    403: {"description": "The wallet's account is suspended or banned, an API key tried to link, or CSRF"},
    409: {"description": "Linking: the wallet already signs in to another account"},
}


class SiweNonce(BaseModel):
    nonce: str
    domain: str
    uri: str
    chain_ids: list[int]
    expires_at_ms: int


class SolanaNonce(BaseModel):
    nonce: str
    message: str  # sign exactly these UTF-8 bytes
    expires_at_ms: int


class SiweVerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=4096, pattern=r"^[^\x00]*$")
    signature: str = Field(min_length=4, max_length=1024, pattern=r"^0x[0-9a-fA-F]+$")


class SolanaVerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    public_key: str = Field(min_length=32, max_length=64, pattern=r"^[1-9A-HJ-NP-Za-km-z]+$")
    nonce: str = Field(min_length=32, max_length=32, pattern=r"^[0-9a-f]+$")
    signature: str = Field(min_length=64, max_length=128, pattern=r"^[1-9A-HJ-NP-Za-km-z]+$")


async def linking_user(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(BEARER),
                       accounts: AccountsService = Depends(get_accounts)) -> Principal | None:
    """The signed-in session a wallet verify links to; None when the caller sends no credentials at all."""
    if credentials is None and request.cookies.get(ACCESS_COOKIE) is None:
        return None
    return await session_user(await current_user(request, credentials, accounts))


async def _wallet_answer(chain: str, address: str, nonce: str, linking: Principal | None, request: Request,
                         response: Response, accounts: AccountsService) -> TokenPair | Me:
    try:
        user = await accounts.wallets.sign_in(chain, address, nonce, linking.user if linking else None)
    except WalletRefused as exc:
        raise _field_error(exc.field, str(exc)) from None
    except WalletTaken as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    except AccountNotActive as exc:
        raise _not_active(exc) from None
    if linking is not None:
        return me_json(user, await accounts.wallets.of_user(user.id))
    if await accounts.needs_second_factor(user.id):  # a wallet is one factor, like a password
        raise await second_factor_required(user.id, accounts)
    tokens = await accounts.start_session(user, _client(request))
    _set_session_cookies(request, response, tokens, accounts.settings.refresh_token_ttl_s)
    return _pair(tokens)


@router.post("/api/v1/auth/siwe/nonce", response_model=SiweNonce, tags=["auth"])
async def siwe_nonce(accounts: AccountsService = Depends(get_accounts)) -> SiweNonce:
    """A single-use nonce and what the EIP-4361 message must name (domain, URI, one of the chain ids)."""
    nonce, issued = await accounts.wallets.new_nonce(ETHEREUM)
    settings = accounts.settings
    return SiweNonce(nonce=nonce, domain=settings.siwe_domain, uri=settings.siwe_uri,
                     chain_ids=settings.siwe_chain_ids, expires_at_ms=issued + settings.wallet_nonce_ttl_s * 1000)


@router.post("/api/v1/auth/siwe/verify", response_model=TokenPair | Me, tags=["auth"], responses=WALLET_REFUSALS)
async def siwe_verify(body: SiweVerifyBody, request: Request, response: Response,
                      linking: Principal | None = Depends(linking_user),
                      accounts: AccountsService = Depends(get_accounts)) -> TokenPair | Me:
    """Sign in with an Ethereum wallet (tokens and cookies as /signin); signed in already: link it (the user)."""
    try:
        address, nonce = await accounts.wallets.verify_siwe(body.message, body.signature)
    except WalletRefused as exc:
        raise _field_error(exc.field, str(exc)) from None
    return await _wallet_answer(ETHEREUM, address, nonce, linking, request, response, accounts)


@router.post("/api/v1/auth/solana/nonce", response_model=SolanaNonce, tags=["auth"])
async def solana_nonce(accounts: AccountsService = Depends(get_accounts)) -> SolanaNonce:
    """A single-use nonce and the exact message a Solana wallet signs for it (ed25519)."""
    nonce, issued = await accounts.wallets.new_nonce(SOLANA)
    return SolanaNonce(nonce=nonce, message=solana_message(accounts.settings.siwe_domain, nonce, issued),
                       expires_at_ms=issued + accounts.settings.wallet_nonce_ttl_s * 1000)


@router.post("/api/v1/auth/solana/verify", response_model=TokenPair | Me, tags=["auth"], responses=WALLET_REFUSALS)
async def solana_verify(body: SolanaVerifyBody, request: Request, response: Response,
                        linking: Principal | None = Depends(linking_user),
                        accounts: AccountsService = Depends(get_accounts)) -> TokenPair | Me:
    """Sign in with a Solana wallet (tokens and cookies as /signin); signed in already: link it (the user)."""
    try:
        address = await accounts.wallets.verify_solana(body.public_key, body.nonce, body.signature)
    except WalletRefused as exc:
        raise _field_error(exc.field, str(exc)) from None
    return await _wallet_answer(SOLANA, address, body.nonce, linking, request, response, accounts)
