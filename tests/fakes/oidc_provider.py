"""A local fake OpenID Connect provider (Google's shape) on a free port, speaking the real wire format.

    async with FakeOidcProvider.start(clock, client_id="cid", client_secret="secret") as idp:
        settings = Settings(google_discovery_url=idp.discovery_url, google_client_id="cid", ...)
        idp.user = FakeAccount(sub="1234", email="ann@gmail.com")

    GET  /.well-known/openid-configuration   the discovery document
    GET  /jwks                               the public signing key (RSA, made with `cryptography`) as a JWK set
    GET  /authorize                          checks client_id, redirect_uri, response_type, scope, state, nonce and
                                             the S256 code challenge, then 302s back to redirect_uri with a code
    POST /token                              authorization_code grant: client authentication (basic or post), the
                                             code once, redirect_uri, and the PKCE verifier against the challenge;
                                             answers an RS256-signed id_token

The id_token is signed here with `cryptography` alone (not the library under test). Tests spoil it on purpose:
`claims` overrides claims of the next tokens (a wrong `aud`, a past `exp`, another `nonce`), `forge = True` signs
with a key the JWKS doesn't hold (same `kid`), `token_error` makes /token refuse.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import BasicAuth, web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from marketpulse.clock import Clock

KID = "fake-key-1"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def rs256(claims: dict[str, Any], key: rsa.RSAPrivateKey, kid: str = KID) -> str:
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64url(json.dumps(claims).encode())
    signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{b64url(signature)}"


@dataclass
class FakeAccount:
    sub: str
    email: str
    email_verified: bool = True
    name: str = "Test Person"


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str
    code_challenge: str


@dataclass
class FakeOidcProvider:
    clock: Clock
    client_id: str
    client_secret: str
    user: FakeAccount = field(default_factory=lambda: FakeAccount(sub="100000000000000000001",
                                                                 email="ann@gmail.com"))
    claims: dict[str, Any] = field(default_factory=dict)  # overrides for the next id_tokens
    forge: bool = False  # sign with a key the JWKS doesn't publish
    token_error: str | None = None
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    token_requests: list[dict[str, str]] = field(default_factory=list)
    _grants: dict[str, _Grant] = field(default_factory=dict)
    _port: int = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, clock: Clock, *, client_id: str, client_secret: str) -> AsyncIterator[FakeOidcProvider]:
        fake = cls(clock=clock, client_id=client_id, client_secret=client_secret)
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", fake._discovery)
        app.router.add_get("/jwks", fake._jwks)
        app.router.add_get("/authorize", fake._authorize)
        app.router.add_post("/token", fake._token)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        fake._port = int(runner.addresses[0][1])
        try:
            yield fake
        finally:
            await runner.cleanup()

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def jwk(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID, "n": b64url(_int_bytes(numbers.n)),
                "e": b64url(_int_bytes(numbers.e))}

    # --- endpoints ---

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "email", "profile"],
        })

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": [self.jwk()]})

    async def _authorize(self, request: web.Request) -> web.Response:
        q = request.query
        problems = [name for name, ok in (
            ("client_id", q.get("client_id") == self.client_id), ("response_type", q.get("response_type") == "code"),
            ("scope", "openid" in q.get("scope", "").split()), ("state", bool(q.get("state"))),
            ("nonce", bool(q.get("nonce"))), ("redirect_uri", bool(q.get("redirect_uri"))),
            ("code_challenge_method", q.get("code_challenge_method") == "S256"),
            ("code_challenge", len(q.get("code_challenge", "")) == 43)) if not ok]
        if problems:
            return web.json_response({"error": "invalid_request", "error_description": f"bad {problems}"}, status=400)
        code = secrets.token_urlsafe(24)
        self._grants[code] = _Grant(q["client_id"], q["redirect_uri"], q["nonce"], q["code_challenge"])
        back = f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}"
        raise web.HTTPFound(back)

    def _client_ok(self, request: web.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("Authorization")
        if header is not None:
            auth = BasicAuth.decode(header)
            return bool(auth.login == self.client_id and auth.password == self.client_secret)
        return form.get("client_id") == self.client_id and form.get("client_secret") == self.client_secret

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        if not self._client_ok(request, form):
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self._grants.pop(form.get("code", ""), None)  # a code works once
        verifier = form.get("code_verifier", "")
        challenge = b64url(hashlib.sha256(verifier.encode()).digest())
        if (self.token_error or grant is None or form.get("grant_type") != "authorization_code"
                or form.get("redirect_uri") != grant.redirect_uri or challenge != grant.code_challenge):
            return web.json_response({"error": self.token_error or "invalid_grant"}, status=400)
        now = self.clock.now_ms() // 1000
        claims = {"iss": self.issuer, "aud": self.client_id, "azp": self.client_id, "sub": self.user.sub,
                  "email": self.user.email, "email_verified": self.user.email_verified, "name": self.user.name,
                  "nonce": grant.nonce, "iat": now, "exp": now + 3600, **self.claims}
        key = rsa.generate_private_key(65537, 2048) if self.forge else self.key
        return web.json_response({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                                  "expires_in": 3599, "scope": "openid email profile",
                                  "id_token": rs256(claims, key)})
