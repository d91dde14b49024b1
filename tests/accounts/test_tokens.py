"""Access tokens: only HS256 with our key, our issuer and audience, not expired by the injected clock. Every forged
or altered token is a 401 over HTTP and changes nothing."""

from __future__ import annotations

import base64
import json

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from marketpulse.accounts.core import (
    AccessClaims,
    InvalidToken,
    Role,
    decode_access_token,
    email_key,
    encode_access_token,
    hash_token,
    password_problems,
)
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime

from .conftest import STRONG, Sink, bearer, signin, signup_verified

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the forged HS512

SECRET = "unit-test-secret-that-is-long-enough"
NOW = 1_760_126_400_000
CLAIMS = AccessClaims("user-1", "session-1", NOW, NOW + 900_000)


def _payload(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {"sub": "user-1", "sid": "session-1", "typ": "access", "iss": "marketpulse",
                               "aud": "marketpulse-api", "iat": NOW // 1000, "exp": NOW // 1000 + 900}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forged_tokens(valid: str, secret: str) -> dict[str, str]:
    """Tokens an attacker could present, each wrong in one way."""
    header, payload, signature = valid.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "alg none with the old signature": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.{signature}",
        "HS512 with our secret": jwt.encode(claims, secret, algorithm="HS512"),
        "RS256 by another key": jwt.encode(claims, rsa_key, algorithm="RS256"),
        "HS256 keyed with a public key (algorithm confusion)": _hs256_raw(claims, pem),
        "another secret": jwt.encode(claims, "another-secret-that-is-long-enough!", algorithm="HS256"),
        "tampered subject": f"{header}.{_b64({**claims, 'sub': 'someone-else'})}.{signature}",
        "wrong audience": jwt.encode({**claims, "aud": "another-api"}, secret, algorithm="HS256"),
        "wrong issuer": jwt.encode({**claims, "iss": "evil"}, secret, algorithm="HS256"),
        "not an access token": jwt.encode({**claims, "typ": "refresh"}, secret, algorithm="HS256"),
        "garbage": "not.a.jwt",
    }


def _hs256_raw(claims: dict[str, object], key: bytes) -> str:
    """HS256 signed with the bytes of an RSA public key, built by hand (PyJWT refuses to use a PEM as an HMAC key,
    which is the point; an attacker's tool does not)."""
    import hashlib
    import hmac

    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


def test_a_token_round_trips_and_expires_at_its_second() -> None:
    token = encode_access_token(CLAIMS, SECRET)
    assert decode_access_token(token, SECRET, NOW) == CLAIMS
    assert decode_access_token(token, SECRET, NOW + 899_999) == CLAIMS
    with pytest.raises(InvalidToken, match="expired"):
        decode_access_token(token, SECRET, NOW + 900_000)


@pytest.mark.parametrize("missing", ["sub", "sid", "exp", "iat", "typ"])
def test_a_token_missing_a_claim_is_refused(missing: str) -> None:
    token = jwt.encode(_payload(**{missing: None}), SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken):
        decode_access_token(token, SECRET, NOW)


def test_every_forged_token_is_refused() -> None:
    valid = encode_access_token(CLAIMS, SECRET)
    for name, token in forged_tokens(valid, SECRET).items():
        with pytest.raises(InvalidToken):
            decode_access_token(token, SECRET, NOW)
            pytest.fail(f"accepted: {name}")


async def test_forged_tokens_get_401_over_http(client: httpx.AsyncClient, sink: Sink) -> None:
    await signup_verified(client, sink, "q@example.com")
    tokens = await signin(client, "q@example.com")
    secret = "test-jwt-secret-of-at-least-32-bytes!"  # the accounts tests' setting
    for name, token in forged_tokens(tokens["access_token"], secret).items():
        resp = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 401, name
        assert (await client.post("/api/v1/auth/signout", headers={"Authorization": f"Bearer {token}"})
                ).status_code == 401, name
    assert (await client.get("/api/v1/auth/me", headers=bearer(tokens))).status_code == 200  # still signed in


def test_password_rule() -> None:
    assert password_problems("Correct-Horse-9-battery") == []
    assert password_problems("Aa1!Aa1!Aa1") == ["at least 12 characters"]
    assert password_problems("a" * 12) == ["an upper-case letter", "a digit", "a special character"]
    assert password_problems("Émile-Zola-1840") == []  # non-ASCII letters count as letters, '-' as special
    assert "at most 256 characters" in password_problems("Aa1!" * 100)


def test_email_keys_and_token_hashes() -> None:
    assert email_key("  Ada@Example.COM ") == email_key("ada@example.com")
    assert hash_token("abc") == hash_token("abc") != hash_token("abd")
    assert len(hash_token("abc")) == 64


async def test_an_admins_access_token_expires_sooner(client: httpx.AsyncClient, runtime: Runtime,
                                                     clock: FakeClock) -> None:
    accounts, settings = runtime.services.accounts, runtime.settings
    settings.access_token_ttl_s, settings.admin_access_ttl_s = 900, 120
    await accounts.create_user("boss@example.com", STRONG, role=Role.ADMIN, verified=True)
    await accounts.create_user("user@example.com", STRONG, verified=True)
    admin, user = await signin(client, "boss@example.com"), await signin(client, "user@example.com")
    assert (admin["expires_in"], user["expires_in"]) == (120, 900)
    clock.advance(121_000)
    assert (await client.get("/api/v1/auth/me", headers=bearer(admin))).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=bearer(user))).status_code == 200
    refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": admin["refresh_token"]})
    assert refreshed.status_code == 200 and refreshed.json()["expires_in"] == 120  # refreshed ones too
    settings.admin_access_ttl_s = 3_600  # never longer than a user's
    assert (await signin(client, "boss@example.com"))["expires_in"] == 900
