"""Sign-in with Google through OpenID Connect (the authorization-code flow with PKCE), on Authlib.

    start     a fresh state, nonce and PKCE verifier are stored (state as its SHA-256, single-use, 10 minutes); the
              browser goes to the provider's authorization endpoint with the state, the nonce and the S256 challenge
    callback  the state is spent (a replayed or forged callback is refused), the code is exchanged at the token
              endpoint with the verifier, and the id_token is verified: RS256 signature against the provider's JWKS,
              `iss`, `aud` == our client id, `exp` (the injected clock), `nonce`, `email_verified`
    user      found by the Google `sub` (external_identities), else by the verified address (the identity is linked),
              else created (plan free, address verified, no password)

The pure part (`verify_id_token`, `safe_next`) does no I/O; `GoogleSignIn` is the adapter that fetches the discovery
document and the JWKS (cached an hour, refetched when a token names an unknown key) and talks to the token endpoint.
Everything is pointed at a provider by `PULSE_GOOGLE_DISCOVERY_URL`, so tests run the same code against a fake.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketpulse.accounts.core import Role, Status, email_key, hash_token
from marketpulse.accounts.plans import DEFAULT_PLAN
from marketpulse.accounts.tables import ExternalIdentityRow, OidcStateRow, UserRow

if TYPE_CHECKING:
    from marketpulse.accounts.service import AccountsService

log = structlog.get_logger(__name__)

GOOGLE = "google"
STATE_TTL_S = 600
METADATA_TTL_S = 3600
ID_TOKEN_ALGORITHMS = ["RS256"]  # what Google signs with; `none` and HMAC (keyed by the public JWKS) never pass
CLOCK_LEEWAY_S = 60
SCOPE = "openid email profile"
CALLBACK_PATH = "/api/v1/auth/google/callback"


class GoogleNotConfigured(Exception):
    pass


class GoogleRefused(Exception):
    """A callback that doesn't hold. `status` is the HTTP answer (400: the request itself, 401: the provider's
    answer or id_token), `field` what is at fault."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field = status, field


@dataclass(frozen=True)
class GoogleClaims:
    subject: str
    email: str
    name: str | None


@dataclass(frozen=True)
class GoogleSignedIn:
    user: UserRow
    created: bool  # a new account: the browser goes to onboarding
    next_path: str | None


# --- pure ---

def safe_next(path: str | None) -> str | None:
    """`path` when it is a path on this site; None for anything a browser could take elsewhere (an absolute or
    protocol-relative URL, a backslash trick, control characters), so sign-in is no open redirect."""
    if path is None or path == "":
        return None
    if (not path.startswith("/") or path.startswith(("//", "/\\")) or "\\" in path or len(path) > 512
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path)):
        raise ValueError("next must be a path on this site, starting with a single /")
    return path


def token_kid(id_token: str) -> str | None:
    """The `kid` a JWT's header names (unverified: it only picks which published key to verify with)."""
    try:
        header = json.loads(base64.urlsafe_b64decode(id_token.split(".")[0] + "=="))
    except (ValueError, UnicodeDecodeError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def verify_id_token(id_token: str, jwks: dict[str, Any], *, issuer: str, client_id: str, nonce: str,
                    now_s: int) -> GoogleClaims:
    """The claims of an id_token once its signature, issuer, audience, expiry, nonce and verified address hold;
    GoogleRefused(401) naming the first that doesn't."""
    try:
        token = jwt.decode(id_token, KeySet.import_key_set(jwks),  # type: ignore[arg-type]
                           algorithms=ID_TOKEN_ALGORITHMS)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise GoogleRefused(401, "id_token",
                            f"the id_token's signature does not verify ({type(exc).__name__})") from None
    claims = token.claims
    registry = jwt.JWTClaimsRegistry(
        now=now_s, leeway=CLOCK_LEEWAY_S, iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id}, exp={"essential": True}, sub={"essential": True},
        nonce={"essential": True, "value": nonce})
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise GoogleRefused(401, "id_token", f"the id_token is refused: {exc}") from None
    azp = claims.get("azp")
    if azp is not None and azp != client_id:  # several audiences: the token must have been issued to us
        raise GoogleRefused(401, "id_token", "the id_token was issued to another client (azp)")
    email = claims.get("email")
    if not isinstance(email, str) or not email or claims.get("email_verified") not in (True, "true"):
        raise GoogleRefused(401, "id_token", "Google has not verified this account's email address")
    name = claims.get("name")
    return GoogleClaims(subject=str(claims["sub"]), email=email, name=name if isinstance(name, str) else None)


# --- adapter ---

class GoogleSignIn:
    def __init__(self, accounts: AccountsService) -> None:
        self.accounts = accounts
        self._metadata: tuple[int, dict[str, Any]] | None = None  # (fetched at ms, document)
        self._jwks: tuple[int, dict[str, Any]] | None = None

    @property
    def configured(self) -> bool:
        s = self.accounts.settings
        return bool(s.google_client_id and s.google_client_secret and s.google_client_secret.get_secret_value())

    @property
    def redirect_uri(self) -> str:
        return self.accounts.settings.public_url.rstrip("/") + CALLBACK_PATH

    def _client(self) -> AsyncOAuth2Client:
        s = self.accounts.settings
        if not self.configured:
            raise GoogleNotConfigured("Google sign-in is not configured on this server (PULSE_GOOGLE_CLIENT_ID and "
                                      "PULSE_GOOGLE_CLIENT_SECRET)")
        assert s.google_client_secret is not None
        return AsyncOAuth2Client(client_id=s.google_client_id, client_secret=s.google_client_secret.get_secret_value(),
                                 scope=SCOPE, redirect_uri=self.redirect_uri, code_challenge_method="S256",
                                 timeout=10.0)

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=10.0) as http:
                resp = await http.get(url)
                resp.raise_for_status()
                body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("google: provider unreachable", what=what, error=type(exc).__name__)
            raise GoogleRefused(502, what, f"the sign-in provider's {what} could not be read") from None
        if not isinstance(body, dict):
            raise GoogleRefused(502, what, f"the sign-in provider's {what} is not a JSON object")
        return body

    async def metadata(self) -> dict[str, Any]:
        now = self.accounts.clock.now_ms()
        if self._metadata is None or now - self._metadata[0] > METADATA_TTL_S * 1000:
            doc = await self._get_json(self.accounts.settings.google_discovery_url, "discovery document")
            missing = [k for k in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri") if k not in doc]
            if missing:
                raise GoogleRefused(502, "discovery document", f"the discovery document lacks {missing}")
            self._metadata = (now, doc)
        return self._metadata[1]

    async def _keys(self, *, fresh: bool) -> dict[str, Any]:
        now = self.accounts.clock.now_ms()
        if fresh or self._jwks is None or now - self._jwks[0] > METADATA_TTL_S * 1000:
            self._jwks = (now, await self._get_json((await self.metadata())["jwks_uri"], "JWKS"))
        return self._jwks[1]

    async def start(self, next_path: str | None) -> tuple[str, str]:
        """The provider's authorization URL to send the browser to, and the state it will echo back."""
        client = self._client()
        meta = await self.metadata()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)  # 86 characters: RFC 7636 asks for 43 to 128
        now = self.accounts.clock.now_ms()
        async with self.accounts.sessions() as s:
            # Anyone may start a sign-in, so the states that can no longer be spent are swept as new ones are made.
            await s.execute(delete(OidcStateRow).where(OidcStateRow.expires_at_ms <= now))
            s.add(OidcStateRow(state_hash=hash_token(state), provider=GOOGLE, nonce=nonce, code_verifier=verifier,
                               next_path=next_path, created_at_ms=now, expires_at_ms=now + STATE_TTL_S * 1000))
            await s.commit()
        async with client:
            url, _ = client.create_authorization_url(meta["authorization_endpoint"], state=state,
                                                     code_verifier=verifier, nonce=nonce)
        return str(url), state

    async def _spend_state(self, state: str) -> OidcStateRow:
        now = self.accounts.clock.now_ms()
        async with self.accounts.sessions() as s:
            spent = await s.execute(update(OidcStateRow).where(
                OidcStateRow.state_hash == hash_token(state), OidcStateRow.provider == GOOGLE,
                OidcStateRow.used_at_ms.is_(None), OidcStateRow.expires_at_ms > now).values(used_at_ms=now))
            if spent.rowcount != 1:  # type: ignore[attr-defined]
                raise GoogleRefused(400, "state", "unknown, expired or already used sign-in state: start again")
            row = await s.get(OidcStateRow, hash_token(state))
            await s.commit()
        assert row is not None
        return row

    async def _exchange(self, code: str, verifier: str) -> str:
        """The id_token the token endpoint answers for `code`."""
        meta = await self.metadata()
        try:
            async with self._client() as client:
                token = await client.fetch_token(meta["token_endpoint"], grant_type="authorization_code", code=code,
                                                 code_verifier=verifier)
        except OAuthError as exc:
            raise GoogleRefused(401, "code", f"the provider refused the code: {exc.error}") from None
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("google: token endpoint failed", error=type(exc).__name__)
            raise GoogleRefused(502, "code", "the sign-in provider's token endpoint could not be reached") from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise GoogleRefused(401, "code", "the provider answered no id_token")
        return id_token

    async def _verify(self, id_token: str, nonce: str) -> GoogleClaims:
        settings, meta = self.accounts.settings, await self.metadata()
        assert settings.google_client_id is not None
        keys = await self._keys(fresh=False)
        if token_kid(id_token) not in {k.get("kid") for k in keys.get("keys", []) if isinstance(k, dict)}:
            keys = await self._keys(fresh=True)  # the provider may have rotated its keys since they were cached
        return verify_id_token(id_token, keys, issuer=meta["issuer"], client_id=settings.google_client_id,
                               nonce=nonce, now_s=self.accounts.clock.now_ms() // 1000)

    async def callback(self, code: str, state: str) -> GoogleSignedIn:
        """The user a provider callback signs in (found, linked or created); GoogleRefused when anything fails,
        in which case no user is created or changed."""
        if not self.configured:  # before anything is spent
            raise GoogleNotConfigured("Google sign-in is not configured on this server")
        row = await self._spend_state(state)
        id_token = await self._exchange(code, row.code_verifier)
        claims = await self._verify(id_token, row.nonce)
        user, created = await self._user_for(claims)
        log.info("security: google sign-in", user=user.id, created=created)
        return GoogleSignedIn(user=user, created=created, next_path=row.next_path)

    async def _user_for(self, claims: GoogleClaims) -> tuple[UserRow, bool]:
        now = self.accounts.clock.now_ms()
        async with self.accounts.sessions() as s:
            identity = (await s.execute(select(ExternalIdentityRow).where(
                ExternalIdentityRow.provider == GOOGLE, ExternalIdentityRow.subject == claims.subject))
            ).scalar_one_or_none()
            if identity is not None:
                user = await s.get(UserRow, identity.user_id)
                assert user is not None  # the foreign key cascades: an identity never outlives its user
                identity.last_used_at_ms, identity.email = now, claims.email
                await s.commit()
                return user, False
            user, created = await self._link_or_create(s, claims, now)
            s.add(ExternalIdentityRow(id=str(uuid.uuid4()), user_id=user.id, provider=GOOGLE,
                                      subject=claims.subject, email=claims.email, created_at_ms=now,
                                      last_used_at_ms=now))
            s.add(self.accounts.audit.entry("auth.identity_linked", actor_id=user.id, target_type="user",
                                            target_id=user.id, new={"provider": GOOGLE, "created": created}))
            await s.commit()
        return user, created

    async def _link_or_create(self, s: AsyncSession, claims: GoogleClaims, now: int) -> tuple[UserRow, bool]:
        stmt = select(UserRow).where(UserRow.email_key == email_key(claims.email))
        user = (await s.execute(stmt)).scalar_one_or_none()
        if user is None:
            user = UserRow(id=str(uuid.uuid4()), email=claims.email.strip(), email_key=email_key(claims.email),
                           password_hash=None, role=Role.USER.value, status=Status.ACTIVE.value, plan=DEFAULT_PLAN,
                           created_at_ms=now, verified_at_ms=now, updated_at_ms=now)
            s.add(user)
            await s.flush()
            return user, True
        if user.verified_at_ms is None:
            # Whoever signed up with this address never proved it was theirs; Google just proved it is this
            # person's. The unproven password goes, or its author would now hold a verified account.
            user.password_hash, user.verified_at_ms, user.updated_at_ms = None, now, now
        return user, False
