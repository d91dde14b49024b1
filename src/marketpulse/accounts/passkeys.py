"""Passkeys (WebAuthn, the `webauthn` package): passwordless sign-in, and a second factor after a password, a
wallet or Google.

Every ceremony starts with a server-made challenge (a `passkey_challenges` row: random, single-use, expiring by the
injected clock, for one purpose and, when it names one, one user). The browser's answer carries the challenge back
inside its signed clientDataJSON; the row is found by it (or by `challenge_id`), the `webauthn` package verifies
origin, RP id, challenge, user presence and the signature, and only then is the challenge spent, in the same
transaction that moves the passkey's signature counter forward. A refused answer changes nothing; a spent challenge
never works again; a counter that doesn't grow (a cloned authenticator) is refused.

The pure helpers (`rp_id_of`, `origins_of`, `client_challenge`, `passkey_json`) do no I/O; `Passkeys` is the
adapter over the database.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import structlog
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, generate_challenge
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from marketpulse.accounts.core import Status, email_key
from marketpulse.accounts.tables import PasskeyChallengeRow, PasskeyRow, UserRow

if TYPE_CHECKING:
    from marketpulse.accounts.service import AccountsService
    from marketpulse.settings import Settings

log = structlog.get_logger(__name__)

RP_NAME = "marketpulse"
CHALLENGE_TTL_S = 300
TIMEOUT_MS = 120_000  # a hint to the browser; the challenge's own expiry is what counts
MAX_PASSKEYS = 20
REGISTER, SIGNIN, SECOND_FACTOR = "register", "signin", "second_factor"
# What a credential answer may fail on while parsing: the package's own errors and the JSON/base64 ones below them.
MALFORMED = (WebAuthnException, ValueError, TypeError, KeyError, AttributeError)


class PasskeyRefused(Exception):
    """A ceremony that doesn't hold; `field` names the body field at fault (for the 4xx)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class TooManyPasskeys(Exception):
    pass


# --- pure ---

def _loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def rp_id_of(settings: Settings) -> str:
    """The relying-party id: PULSE_WEBAUTHN_RP_ID, else the host PULSE_PUBLIC_URL names. Browsers refuse an IP
    address as RP id, so a loopback address (the demo's 127.0.0.1) becomes `localhost`: browse it there."""
    if settings.webauthn_rp_id:
        return settings.webauthn_rp_id
    host = urlsplit(settings.public_url).hostname or "localhost"
    return "localhost" if _loopback_ip(host) else host


def origins_of(settings: Settings) -> list[str]:
    """The origins ceremonies may come from: PULSE_WEBAUTHN_ORIGIN, else PULSE_PUBLIC_URL's scheme://host[:port]
    (and, for a loopback address, the same on `localhost`, where browsers allow passkeys)."""
    if settings.webauthn_origin:
        return [settings.webauthn_origin.rstrip("/")]
    parts = urlsplit(settings.public_url)
    origins = [f"{parts.scheme}://{parts.netloc}"]
    if parts.hostname and _loopback_ip(parts.hostname):
        origins.append(f"{parts.scheme}://localhost" + (f":{parts.port}" if parts.port else ""))
    return origins


def client_challenge(credential: dict[str, Any]) -> str:
    """The challenge (base64url, as issued) a credential answer's clientDataJSON carries; unverified, it only finds
    the challenge row to verify against."""
    try:
        client_data = json.loads(base64url_to_bytes(credential["response"]["clientDataJSON"]))
        challenge = client_data["challenge"]
    except MALFORMED:
        raise PasskeyRefused("credential", "not a WebAuthn credential: response.clientDataJSON is unreadable") \
            from None
    if not isinstance(challenge, str) or not 16 <= len(challenge) <= 128:
        raise PasskeyRefused("credential", "the credential carries no challenge of ours")
    return challenge


def passkey_json(row: PasskeyRow) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "created_at_ms": row.created_at_ms,
            "last_used_at_ms": row.last_used_at_ms, "transports": row.transports or []}


def _descriptor(row: PasskeyRow) -> PublicKeyCredentialDescriptor:
    transports = []
    for t in row.transports or []:
        try:
            transports.append(AuthenticatorTransport(t))
        except ValueError:
            continue  # a transport a newer browser named: only a hint
    return PublicKeyCredentialDescriptor(id=base64url_to_bytes(row.credential_id), transports=transports or None)


def _options_json(options: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(options_to_json(options))
    return out


# --- adapter ---

class Passkeys:
    def __init__(self, accounts: AccountsService) -> None:
        self.accounts = accounts

    @property
    def rp_id(self) -> str:
        return rp_id_of(self.accounts.settings)

    @property
    def origins(self) -> list[str]:
        return origins_of(self.accounts.settings)

    async def of_user(self, user_id: str) -> list[PasskeyRow]:
        async with self.accounts.sessions() as s:
            stmt = select(PasskeyRow).where(PasskeyRow.user_id == user_id).order_by(PasskeyRow.created_at_ms)
            return list((await s.execute(stmt)).scalars())

    async def count(self, user_id: str) -> int:
        async with self.accounts.sessions() as s:
            return int((await s.execute(select(func.count()).select_from(PasskeyRow)
                                        .where(PasskeyRow.user_id == user_id))).scalar_one())

    async def delete(self, user_id: str, passkey_id: str) -> bool:
        """Remove one of the user's passkeys; False when they have no such passkey (another user's included)."""
        async with self.accounts.sessions() as s:
            gone = await s.execute(delete(PasskeyRow).where(PasskeyRow.id == passkey_id,
                                                            PasskeyRow.user_id == user_id))
            if gone.rowcount != 1:  # type: ignore[attr-defined]
                return False
            s.add(self.accounts.audit.entry("auth.passkey_removed", actor_id=user_id, target_type="user",
                                            target_id=user_id))
            await s.commit()
        return True

    async def _new_challenge(self, purpose: str, user_id: str | None) -> tuple[str, bytes]:
        challenge, now = generate_challenge(), self.accounts.clock.now_ms()
        row_id = str(uuid.uuid4())
        async with self.accounts.sessions() as s:
            # Anyone may ask for sign-in challenges, so the ones that can no longer be spent go as new ones come.
            await s.execute(delete(PasskeyChallengeRow).where(PasskeyChallengeRow.expires_at_ms <= now))
            s.add(PasskeyChallengeRow(id=row_id, challenge=bytes_to_base64url(challenge), purpose=purpose,
                                      user_id=user_id, created_at_ms=now, expires_at_ms=now + CHALLENGE_TTL_S * 1000))
            await s.commit()
        return row_id, challenge

    def _live(self, row: PasskeyChallengeRow | None, purposes: tuple[str, ...], field: str) -> PasskeyChallengeRow:
        if row is None or row.purpose not in purposes:
            raise PasskeyRefused(field, "unknown challenge: ask for new options")
        if row.used_at_ms is not None:
            raise PasskeyRefused(field, "this challenge was already used: ask for new options")
        if self.accounts.clock.now_ms() >= row.expires_at_ms:
            raise PasskeyRefused(field, "this challenge has expired: ask for new options")
        return row

    async def _spend(self, s: AsyncSession, row: PasskeyChallengeRow) -> None:
        """Spend the challenge in the caller's transaction; two requests racing with one answer: one wins."""
        now = self.accounts.clock.now_ms()
        spent = await s.execute(update(PasskeyChallengeRow).where(
            PasskeyChallengeRow.id == row.id, PasskeyChallengeRow.used_at_ms.is_(None),
            PasskeyChallengeRow.expires_at_ms > now).values(used_at_ms=now))
        if spent.rowcount != 1:  # type: ignore[attr-defined]
            raise PasskeyRefused("credential", "this challenge was already used: ask for new options")

    # --- registration ---

    async def registration_options(self, user: UserRow) -> dict[str, Any]:
        """PublicKeyCredentialCreationOptions (JSON) for a new passkey of `user`; its existing ones are excluded."""
        existing = await self.of_user(user.id)
        if len(existing) >= MAX_PASSKEYS:
            raise TooManyPasskeys(f"you have {MAX_PASSKEYS} passkeys: remove one first")
        _, challenge = await self._new_challenge(REGISTER, user.id)
        options = generate_registration_options(
            rp_id=self.rp_id, rp_name=RP_NAME, user_id=user.id.encode(), user_name=user.email or user.id,
            challenge=challenge, timeout=TIMEOUT_MS, exclude_credentials=[_descriptor(r) for r in existing],
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.PREFERRED))
        return _options_json(options)

    async def register(self, user: UserRow, credential: dict[str, Any], name: str) -> PasskeyRow:
        """Store the passkey a `navigator.credentials.create()` answer made, once it verifies against a live
        registration challenge of this user."""
        challenge = client_challenge(credential)
        async with self.accounts.sessions() as s:
            row = (await s.execute(select(PasskeyChallengeRow).where(
                PasskeyChallengeRow.challenge == challenge, PasskeyChallengeRow.user_id == user.id))
            ).scalar_one_or_none()
            self._live(row, (REGISTER,), "credential")
            assert row is not None
            try:
                verified = verify_registration_response(
                    credential=credential, expected_challenge=base64url_to_bytes(row.challenge),
                    expected_rp_id=self.rp_id, expected_origin=self.origins)
            except MALFORMED as exc:
                raise PasskeyRefused("credential", f"the passkey does not verify: {str(exc)[:200]}") from None
            credential_id = bytes_to_base64url(verified.credential_id)
            if (await s.execute(select(PasskeyRow.id).where(PasskeyRow.credential_id == credential_id))).first():
                raise PasskeyRefused("credential", "this passkey is already registered")
            await self._spend(s, row)
            now = self.accounts.clock.now_ms()
            transports = credential.get("response", {}).get("transports")
            passkey = PasskeyRow(id=str(uuid.uuid4()), user_id=user.id, credential_id=credential_id,
                                 public_key=verified.credential_public_key, sign_count=verified.sign_count,
                                 name=name, created_at_ms=now, last_used_at_ms=None,
                                 transports=[str(t)[:16] for t in transports][:8] if isinstance(transports, list)
                                 else None)
            s.add(passkey)
            s.add(self.accounts.audit.entry("auth.passkey_added", actor_id=user.id, target_type="user",
                                            target_id=user.id))
            await s.commit()
        log.info("security: passkey added", user=user.id)
        return passkey

    # --- authentication ---

    async def signin_options(self, email: str | None) -> tuple[str, dict[str, Any]]:
        """A sign-in challenge and its PublicKeyCredentialRequestOptions. With an address that has passkeys, the
        options list them (and only they may answer); otherwise the browser offers its discoverable passkeys."""
        user_id, allow = None, []
        if email:
            async with self.accounts.sessions() as s:
                user = (await s.execute(select(UserRow).where(UserRow.email_key == email_key(email)))
                        ).scalar_one_or_none()
            if user is not None:
                allow = await self.of_user(user.id)
                user_id = user.id if allow else None
        return await self._request_options(SIGNIN, user_id, allow, UserVerificationRequirement.REQUIRED)

    async def second_factor_options(self, user_id: str) -> dict[str, Any] | None:
        """Request options for a passkey as second factor of `user_id`; None when they have no passkey."""
        allow = await self.of_user(user_id)
        if not allow:
            return None
        _, options = await self._request_options(SECOND_FACTOR, user_id, allow,
                                                 UserVerificationRequirement.PREFERRED)
        return options

    async def _request_options(self, purpose: str, user_id: str | None, allow: list[PasskeyRow],
                               verification: UserVerificationRequirement) -> tuple[str, dict[str, Any]]:
        challenge_id, challenge = await self._new_challenge(purpose, user_id)
        options = generate_authentication_options(
            rp_id=self.rp_id, challenge=challenge, timeout=TIMEOUT_MS,
            allow_credentials=[_descriptor(r) for r in allow], user_verification=verification)
        return challenge_id, _options_json(options)

    async def signin(self, challenge_id: str, credential: dict[str, Any]) -> UserRow:
        """The user a passwordless assertion signs in (user verification required: the passkey is both factors)."""
        async with self.accounts.sessions() as s:
            row = self._live(await s.get(PasskeyChallengeRow, challenge_id), (SIGNIN,), "challenge_id")
            return await self._assert(s, row, credential, row.user_id, require_uv=True)

    async def second_factor(self, user_id: str, credential: dict[str, Any]) -> UserRow:
        """`user_id`, once an assertion by one of their passkeys answers a live challenge issued to them (or a
        sign-in challenge issued to no one: the page after Google's callback asks for one without an address)."""
        challenge = client_challenge(credential)
        async with self.accounts.sessions() as s:
            row = (await s.execute(select(PasskeyChallengeRow).where(
                PasskeyChallengeRow.challenge == challenge,
                or_(PasskeyChallengeRow.user_id == user_id, PasskeyChallengeRow.user_id.is_(None))))
            ).scalar_one_or_none()
            self._live(row, (SECOND_FACTOR, SIGNIN), "credential")
            assert row is not None
            return await self._assert(s, row, credential, user_id, require_uv=False)

    async def _assert(self, s: AsyncSession, row: PasskeyChallengeRow, credential: dict[str, Any],
                      user_id: str | None, *, require_uv: bool) -> UserRow:
        credential_id = credential.get("id") if isinstance(credential, dict) else None
        passkey = (await s.execute(select(PasskeyRow).where(PasskeyRow.credential_id == credential_id))
                   ).scalar_one_or_none() if isinstance(credential_id, str) else None
        if passkey is None or (user_id is not None and passkey.user_id != user_id):
            raise PasskeyRefused("credential", "unknown passkey: it is not registered to this account")
        user = await s.get(UserRow, passkey.user_id)
        assert user is not None  # the foreign key cascades: a passkey never outlives its user
        if user.status != Status.ACTIVE:
            from marketpulse.accounts.service import AccountNotActive  # the service imports this module

            raise AccountNotActive(user.status)
        try:
            verified = verify_authentication_response(
                credential=credential, expected_challenge=base64url_to_bytes(row.challenge),
                expected_rp_id=self.rp_id, expected_origin=self.origins, credential_public_key=passkey.public_key,
                credential_current_sign_count=passkey.sign_count, require_user_verification=require_uv)
        except MALFORMED as exc:
            log.warning("security: passkey assertion refused", user=user.id, reason=str(exc)[:120])
            raise PasskeyRefused("credential", f"the passkey does not verify: {str(exc)[:200]}") from None
        await self._spend(s, row)
        moved = await s.execute(update(PasskeyRow).where(
            PasskeyRow.id == passkey.id, PasskeyRow.sign_count == passkey.sign_count).values(
            sign_count=verified.new_sign_count, last_used_at_ms=self.accounts.clock.now_ms()))
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise PasskeyRefused("credential", "this passkey was used at the same moment elsewhere: try again")
        await s.commit()
        log.info("security: passkey verified", user=user.id)
        return user

