"""A software WebAuthn authenticator plus the browser's part, so the real `webauthn` verification runs in tests.

    device = SoftAuthenticator(origin="http://test")
    credential = device.create(options)      # answers PublicKeyCredentialCreationOptions (JSON), as the browser's
                                             # navigator.credentials.create() + toJSON() would
    assertion = device.get(options)          # answers PublicKeyCredentialRequestOptions (JSON)

Each credential is an EC P-256 key (`cryptography`); registration builds clientDataJSON, authenticatorData with the
attested credential data (COSE key) and a `none` attestation object in CBOR (`cbor2`). Assertions sign
authenticatorData || SHA-256(clientDataJSON) with ECDSA-SHA256 and bump the signature counter. Tests spoil
ceremonies on purpose: another `origin` or `rp_id` than the options name, a counter set back (`sign_count`), a copy
of the device (`clone`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field, replace
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40
AAGUID = bytes(16)  # a `none` attestation names no model


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftCredential:
    credential_id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})


@dataclass
class SoftAuthenticator:
    origin: str
    user_verified: bool = True
    credentials: dict[bytes, SoftCredential] = field(default_factory=dict)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin or self.origin,
                           "crossOrigin": False}).encode()

    def _flags(self, extra: int = 0) -> int:
        return FLAG_UP | (FLAG_UV if self.user_verified else 0) | extra

    def create(self, options: dict[str, Any], *, origin: str | None = None, rp_id: str | None = None) -> dict[str, Any]:
        """navigator.credentials.create(): a new credential for the options' RP and user."""
        rp = rp_id or options["rp"]["id"]
        cred = SoftCredential(credential_id=os.urandom(32), key=ec.generate_private_key(ec.SECP256R1()), rp_id=rp,
                              user_handle=from_b64url(options["user"]["id"]))
        self.credentials[cred.credential_id] = cred
        attested = AAGUID + struct.pack(">H", len(cred.credential_id)) + cred.credential_id + cred.cose_key()
        auth_data = (hashlib.sha256(rp.encode()).digest() + bytes([self._flags(FLAG_AT)])
                     + struct.pack(">I", cred.sign_count) + attested)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        return {"id": b64url(cred.credential_id), "rawId": b64url(cred.credential_id), "type": "public-key",
                "response": {"clientDataJSON": b64url(client_data), "attestationObject": b64url(attestation),
                             "transports": ["internal"]},
                "clientExtensionResults": {}, "authenticatorAttachment": "platform"}

    def get(self, options: dict[str, Any], *, credential_id: bytes | None = None, origin: str | None = None,
            rp_id: str | None = None) -> dict[str, Any]:
        """navigator.credentials.get(): an assertion by `credential_id`, else the first credential the options
        allow (or, with none listed, the first this device holds for the RP)."""
        allowed = [from_b64url(c["id"]) for c in options.get("allowCredentials", [])]
        if credential_id is None:
            usable = [c for c in allowed if c in self.credentials] if allowed else list(self.credentials)
            assert usable, "this authenticator holds none of the allowed credentials"
            credential_id = usable[0]
        cred = self.credentials[credential_id]
        cred.sign_count += 1
        rp = rp_id or options.get("rpId") or cred.rp_id
        auth_data = (hashlib.sha256(rp.encode()).digest() + bytes([self._flags()])
                     + struct.pack(">I", cred.sign_count))
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = cred.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {"id": b64url(credential_id), "rawId": b64url(credential_id), "type": "public-key",
                "response": {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
                             "signature": b64url(signature), "userHandle": b64url(cred.user_handle)},
                "clientExtensionResults": {}, "authenticatorAttachment": "platform"}

    def clone(self) -> SoftAuthenticator:
        """A copy of this device with the same keys and counters (what an attacker who extracted them holds)."""
        return SoftAuthenticator(origin=self.origin, user_verified=self.user_verified,
                                 credentials={k: replace(c) for k, c in self.credentials.items()})
