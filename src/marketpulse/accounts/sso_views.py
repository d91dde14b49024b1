"""Sign-in with Google and with passkeys.

    GET    /api/v1/auth/google/start?next=/path     302 to Google (state, nonce, PKCE S256); 404 when not configured
    GET    /api/v1/auth/google/callback?code=&state= signs in like /signin (cookies) and 302 to `next`, or to
                                                     /onboarding for a new account; with a second factor on, 302 to
                                                     /signin?next=…#second_factor=<challenge>
                                                     (a new account: /onboarding, `?next=` when not /)
    POST   /api/v1/account/passkeys/register/options → PublicKeyCredentialCreationOptions (JSON)
    POST   /api/v1/account/passkeys/register/verify  {credential, name} → the passkey
    GET    /api/v1/account/passkeys                  your passkeys
    DELETE /api/v1/account/passkeys/{id}
    POST   /api/v1/auth/passkeys/signin/options      {email?} → {challenge_id, options}
    POST   /api/v1/auth/passkeys/signin/verify       {challenge_id, credential} → the token pair and cookies of /signin

A passkey as second factor answers the 403 `second_factor_required` of /signin (its `passkey_options`) at
POST /api/v1/auth/signin/second-factor {challenge, credential} (see `accounts.views`).
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from marketpulse.accounts.google import GoogleNotConfigured, GoogleRefused, safe_next
from marketpulse.accounts.passkeys import PasskeyRefused, TooManyPasskeys, passkey_json
from marketpulse.accounts.schemas import UNAUTHORIZED, Email, TokenPair
from marketpulse.accounts.service import AccountNotActive, AccountsService, Principal
from marketpulse.accounts.views import (
    _client,
    _field_error,
    _not_active,
    _pair,
    _set_session_cookies,
    get_accounts,
    session_user,
)
from marketpulse.api.pages import Page, page

router = APIRouter()
log = structlog.get_logger(__name__)

STATE_COOKIE = "mp_oidc_state"
GOOGLE_PATH = "/api/v1/auth/google"
NEW_USER_PATH = "/onboarding"
NOT_CONFIGURED: dict[int | str, dict[str, Any]] = {
    404: {"description": "Google sign-in is not configured on this server"}}
CALLBACK_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The provider sent an error, or the state is missing, unknown, expired, already used or "
                         "not this browser's"},
    401: {"description": "The provider refused the code, or the id_token failed a check (signature, issuer, "
                         "audience, expiry, nonce, verified address)"},
    403: {"description": "The account is suspended or banned"},
    502: {"description": "The provider could not be reached"},
    **NOT_CONFIGURED,
}


def _refused(exc: GoogleRefused) -> HTTPException:
    log.warning("security: google sign-in refused", reason=exc.field, status=exc.status)
    return HTTPException(exc.status, detail={"reason": f"google_{exc.field.replace(' ', '_')}", "message": str(exc)})


def _not_configured(exc: GoogleNotConfigured) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail={"reason": "google_not_configured", "message": str(exc)})


@router.get("/api/v1/auth/google/start", status_code=status.HTTP_302_FOUND, response_class=RedirectResponse,
            tags=["auth"], responses={**NOT_CONFIGURED, 502: CALLBACK_REFUSALS[502]})
async def google_start(request: Request, next: str | None = Query(None, max_length=512),  # noqa: A002 (contract)
                       accounts: AccountsService = Depends(get_accounts)) -> RedirectResponse:
    """Go to Google to sign in; back at the callback, the browser lands on `next` (a path on this site)."""
    try:
        next_path = safe_next(next)
    except ValueError as exc:
        raise RequestValidationError([{"loc": ("query", "next"), "msg": str(exc), "type": "value_error",
                                       "input": next}]) from None
    try:
        url, state = await accounts.google.start(next_path)
    except GoogleNotConfigured as exc:
        raise _not_configured(exc) from None
    except GoogleRefused as exc:
        raise _refused(exc) from None
    response = RedirectResponse(url, status_code=status.HTTP_302_FOUND)
    # The state is also bound to this browser, so a callback URL someone else started can't sign it in (login CSRF).
    response.set_cookie(STATE_COOKIE, state, max_age=600, httponly=True, secure=request.url.scheme == "https",
                        samesite="lax", path=GOOGLE_PATH)
    return response


@router.get("/api/v1/auth/google/callback", status_code=status.HTTP_302_FOUND, response_class=RedirectResponse,
            tags=["auth"], responses=CALLBACK_REFUSALS)
async def google_callback(request: Request, code: str | None = Query(None, max_length=2048),
                          state: str | None = Query(None, max_length=256),
                          error: str | None = Query(None, max_length=256),
                          accounts: AccountsService = Depends(get_accounts)) -> RedirectResponse:
    """Where Google sends the browser back: signs in (the cookies of /signin) and goes on to `next`."""
    if not accounts.google.configured:
        raise _not_configured(GoogleNotConfigured("Google sign-in is not configured on this server"))
    if error is not None:
        raise _refused(GoogleRefused(400, "error", f"the provider answered {error!r}: sign-in did not happen"))
    if not code or not state:
        raise _refused(GoogleRefused(400, "code" if not code else "state", "the callback needs code and state"))
    cookie = request.cookies.get(STATE_COOKIE)
    if cookie is None or not secrets.compare_digest(cookie, state):
        raise _refused(GoogleRefused(400, "state", "this sign-in was not started in this browser: start again"))
    try:
        signed_in = await accounts.google.callback(code, state)
    except GoogleRefused as exc:
        raise _refused(exc) from None
    user = signed_in.user
    if user.status != "active":
        raise _not_active(AccountNotActive(user.status))
    target = _landing(signed_in.next_path, signed_in.created)
    if await accounts.needs_second_factor(user.id):
        challenge = accounts.totp.challenge(user.id)
        # A fragment never reaches a server or a Referer: the sign-in page reads it and asks for the factor.
        response = RedirectResponse(f"/signin?next={quote(target, safe='/')}#second_factor={challenge}",
                                    status_code=status.HTTP_302_FOUND)
    else:
        tokens = await accounts.start_session(user, _client(request))
        response = RedirectResponse(target, status_code=status.HTTP_302_FOUND)
        _set_session_cookies(request, response, tokens, accounts.settings.refresh_token_ttl_s)
    response.delete_cookie(STATE_COOKIE, path=GOOGLE_PATH)
    return response


def _landing(next_path: str | None, created: bool) -> str:
    """Where the browser goes once signed in: a new account through onboarding first (carrying `next` on)."""
    if not created:
        return next_path or "/"
    return NEW_USER_PATH if next_path in (None, "/") else f"{NEW_USER_PATH}?next={quote(next_path, safe='/')}"


# --- passkeys ---

class Passkey(BaseModel):
    id: str
    name: str
    created_at_ms: int
    last_used_at_ms: int | None
    transports: list[str]


class RegisterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credential: dict[str, Any]  # what navigator.credentials.create() answered, as JSON (toJSON())
    name: str = Field("passkey", min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")
    # Ignored when sent (the page echoes it): the challenge is found from the credential's own clientDataJSON.
    challenge_id: str | None = Field(None, max_length=64)


class SigninOptionsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email | None = None


class SigninOptions(BaseModel):
    challenge_id: str
    options: dict[str, Any]  # PublicKeyCredentialRequestOptions, for navigator.credentials.get()


class SigninVerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    challenge_id: str = Field(min_length=1, max_length=36)
    credential: dict[str, Any]  # what navigator.credentials.get() answered, as JSON


PASSKEY_REFUSALS: dict[int | str, dict[str, Any]] = {
    403: {"description": "The account is suspended or banned"},
}


@router.post("/api/v1/account/passkeys/register/options", response_model=dict[str, Any], tags=["account"],
             responses={**UNAUTHORIZED, 409: {"description": "Too many passkeys: remove one first"}})
async def passkey_register_options(principal: Principal = Depends(session_user),
                                   accounts: AccountsService = Depends(get_accounts)) -> dict[str, Any]:
    """PublicKeyCredentialCreationOptions for navigator.credentials.create(); verify its answer next."""
    try:
        return await accounts.passkeys.registration_options(principal.user)
    except TooManyPasskeys as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None


@router.post("/api/v1/account/passkeys/register/verify", status_code=status.HTTP_201_CREATED, response_model=Passkey,
             tags=["account"], responses=UNAUTHORIZED)
async def passkey_register_verify(body: RegisterBody, principal: Principal = Depends(session_user),
                                  accounts: AccountsService = Depends(get_accounts)) -> Passkey:
    """Store the new passkey once the authenticator's answer verifies."""
    try:
        row = await accounts.passkeys.register(principal.user, body.credential, body.name)
    except PasskeyRefused as exc:
        raise _field_error(exc.field, str(exc)) from None
    return Passkey(**passkey_json(row))


@router.get("/api/v1/account/passkeys", response_model=Page[Passkey], tags=["account"], responses=UNAUTHORIZED)
async def list_passkeys(principal: Principal = Depends(session_user),
                        accounts: AccountsService = Depends(get_accounts)) -> Page[Passkey]:
    return page([Passkey(**passkey_json(r)) for r in await accounts.passkeys.of_user(principal.user.id)])


@router.delete("/api/v1/account/passkeys/{passkey_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["account"],
               responses={**UNAUTHORIZED, 404: {"description": "You have no such passkey"}})
async def delete_passkey(passkey_id: str, principal: Principal = Depends(session_user),
                         accounts: AccountsService = Depends(get_accounts)) -> Response:
    if not await accounts.passkeys.delete(principal.user.id, passkey_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no passkey {passkey_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/api/v1/auth/passkeys/signin/options", response_model=SigninOptions, tags=["auth"])
async def passkey_signin_options(body: SigninOptionsBody | None = None,
                                 accounts: AccountsService = Depends(get_accounts)) -> SigninOptions:
    """A single-use challenge and the options for navigator.credentials.get() (with `email`: that account's
    passkeys only)."""
    challenge_id, options = await accounts.passkeys.signin_options(body.email if body else None)
    return SigninOptions(challenge_id=challenge_id, options=options)


@router.post("/api/v1/auth/passkeys/signin/verify", response_model=TokenPair, tags=["auth"],
             responses=PASSKEY_REFUSALS)
async def passkey_signin_verify(body: SigninVerifyBody, request: Request, response: Response,
                                accounts: AccountsService = Depends(get_accounts)) -> TokenPair:
    """Sign in with a passkey (user verification required: no second factor asked); tokens and cookies as
    /signin."""
    try:
        user = await accounts.passkeys.signin(body.challenge_id, body.credential)
    except PasskeyRefused as exc:
        raise _field_error(exc.field, str(exc)) from None
    except AccountNotActive as exc:
        raise _not_active(exc) from None
    tokens = await accounts.start_session(user, _client(request))
    _set_session_cookies(request, response, tokens, accounts.settings.refresh_token_ttl_s)
    return _pair(tokens)
