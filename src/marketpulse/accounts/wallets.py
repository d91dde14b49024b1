"""Wallet sign-in: Sign-In with Ethereum (EIP-4361) and Solana (ed25519 over a server-built message).

The server hands out a single-use nonce (stored as its SHA-256, with an expiry judged by the injected clock); the
wallet signs a message naming it; verify checks the message's domain, URI and chain against the settings, the
signature, and only then spends the nonce and signs the wallet's user in (creating a wallet-only user the first
time), or links the wallet to the signed-in user. A refused attempt changes nothing, not even the nonce, so a
mistyped signature doesn't cost the user a new challenge; a spent or expired nonce never works again.

EIP-4361 messages are parsed by the maintained `signinwithethereum` package (import name `siwe`), which recovers the
signer with eth-account. Solana has no message standard the server must parse: it rebuilds the exact text it
issued for the nonce and checks the ed25519 signature over it (PyNaCl), the public key being base58.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import base58
import structlog
from eth_utils import to_checksum_address
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from siwe import SiweMessage, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketpulse.accounts.core import Role, Status, hash_token
from marketpulse.accounts.plans import DEFAULT_PLAN
from marketpulse.accounts.tables import UserRow, WalletNonceRow, WalletRow

if TYPE_CHECKING:
    from marketpulse.accounts.service import AccountsService

log = structlog.get_logger(__name__)

ETHEREUM = "ethereum"
SOLANA = "solana"


class WalletRefused(Exception):
    """A wallet proof that doesn't hold; `field` names the body field at fault (for the 4xx)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class WalletTaken(Exception):
    """The wallet already signs in as another user, so it can't be linked to this one."""


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def solana_message(domain: str, nonce: str, issued_at_ms: int) -> str:
    """The text a Solana wallet signs for `nonce`; rebuilt on verify from what was stored, never parsed."""
    return (f"{domain} wants you to sign in with your Solana account.\n\n"
            f"Nonce: {nonce}\nIssued At: {iso_ms(issued_at_ms)}")


def wallet_json(row: WalletRow) -> dict[str, Any]:
    return {"chain": row.chain, "address": row.address, "created_at_ms": row.created_at_ms,
            "last_used_at_ms": row.last_used_at_ms}


class Wallets:
    def __init__(self, accounts: AccountsService) -> None:
        self.accounts = accounts

    async def new_nonce(self, chain: str) -> tuple[str, int]:
        """A fresh nonce (alphanumeric, as EIP-4361 requires) and when it was issued."""
        nonce, now = secrets.token_hex(16), self.accounts.clock.now_ms()
        ttl_ms = self.accounts.settings.wallet_nonce_ttl_s * 1000
        async with self.accounts.sessions() as s:
            # Anyone may ask for nonces, so the ones that can no longer be spent are swept as new ones are made.
            await s.execute(delete(WalletNonceRow).where(WalletNonceRow.expires_at_ms <= now))
            s.add(WalletNonceRow(nonce_hash=hash_token(nonce), chain=chain, created_at_ms=now,
                                 expires_at_ms=now + ttl_ms))
            await s.commit()
        return nonce, now

    async def _live_nonce(self, s: AsyncSession, chain: str, nonce: str, field: str) -> WalletNonceRow:
        row = await s.get(WalletNonceRow, hash_token(nonce))
        if row is None or row.chain != chain:
            raise WalletRefused(field, "unknown nonce: ask for a new one")
        if row.used_at_ms is not None:
            raise WalletRefused(field, "this nonce was already used: ask for a new one")
        if self.accounts.clock.now_ms() >= row.expires_at_ms:
            raise WalletRefused(field, "this nonce has expired: ask for a new one")
        return row

    async def verify_siwe(self, message: str, signature: str) -> tuple[str, str]:
        """The checksummed address that signed a valid EIP-4361 `message`, and the nonce it names."""
        settings = self.accounts.settings
        try:
            parsed = SiweMessage.from_message(message)
        except Exception as exc:  # the parser raises ValueError, pydantic errors or abnf errors alike
            raise WalletRefused("message", f"not an EIP-4361 message: {str(exc)[:200]}") from None
        if parsed.domain != settings.siwe_domain:
            raise WalletRefused("message", f"the message is for {parsed.domain[:100]!r}, not {settings.siwe_domain!r}")
        if str(parsed.uri) != settings.siwe_uri:
            raise WalletRefused("message", f"the message's URI must be {settings.siwe_uri!r}")
        if parsed.chain_id not in settings.siwe_chain_ids:
            raise WalletRefused("message", f"chain {parsed.chain_id} is not accepted: use one of "
                                           f"{settings.siwe_chain_ids}")
        async with self.accounts.sessions() as s:
            await self._live_nonce(s, ETHEREUM, parsed.nonce, "message")
        now = datetime.fromtimestamp(self.accounts.clock.now_ms() / 1000, UTC)
        try:
            parsed.verify(signature, domain=settings.siwe_domain, uri=settings.siwe_uri, chain_id=parsed.chain_id,
                          nonce=parsed.nonce, timestamp=now, strict=True)
        except VerificationError as exc:
            field = "signature" if type(exc).__name__ == "InvalidSignature" else "message"
            raise WalletRefused(field, f"the message does not verify: {type(exc).__name__}") from None
        return to_checksum_address(parsed.address), parsed.nonce

    async def verify_solana(self, public_key: str, nonce: str, signature: str) -> str:
        """The base58 public key, once its ed25519 signature over the message issued for `nonce` checks out."""
        key = _base58(public_key, "public_key", 32)
        sig = _base58(signature, "signature", 64)
        async with self.accounts.sessions() as s:
            row = await self._live_nonce(s, SOLANA, nonce, "nonce")
        text = solana_message(self.accounts.settings.siwe_domain, nonce, row.created_at_ms)
        try:
            VerifyKey(key).verify(text.encode(), sig)
        except BadSignatureError:
            raise WalletRefused("signature", "the signature does not match this public key and nonce") from None
        return base58.b58encode(key).decode()

    async def sign_in(self, chain: str, address: str, nonce: str, linking: UserRow | None) -> UserRow:
        """Spend the nonce and answer the wallet's user: the signed-in `linking` user (the wallet is linked to it),
        else the user the wallet already belongs to, else a new wallet-only user. One transaction: a nonce raced
        by two requests is spent by one of them only."""
        now = self.accounts.clock.now_ms()
        async with self.accounts.sessions() as s:
            spent = await s.execute(
                update(WalletNonceRow)
                .where(WalletNonceRow.nonce_hash == hash_token(nonce), WalletNonceRow.chain == chain,
                       WalletNonceRow.used_at_ms.is_(None), WalletNonceRow.expires_at_ms > now)
                .values(used_at_ms=now))
            if spent.rowcount != 1:  # type: ignore[attr-defined]
                raise WalletRefused("nonce" if chain == SOLANA else "message",
                                    "this nonce was already used or has expired: ask for a new one")
            wallet = (await s.execute(select(WalletRow).where(WalletRow.chain == chain,
                                                              WalletRow.address == address))).scalar_one_or_none()
            user = await self._owner(s, wallet, linking, now)
            if wallet is None:
                s.add(WalletRow(id=str(uuid.uuid4()), user_id=user.id, chain=chain, address=address,
                                created_at_ms=now, last_used_at_ms=now))
                s.add(self.accounts.audit.entry("auth.wallet_linked", actor_id=user.id, target_type="user",
                                                target_id=user.id, new={"chain": chain}))
            else:
                wallet.last_used_at_ms = now
            await s.commit()
        log.info("security: wallet verified", user=user.id, chain=chain, linked=linking is not None)
        return user

    async def _owner(self, s: AsyncSession, wallet: WalletRow | None, linking: UserRow | None, now: int) -> UserRow:
        if linking is not None:
            if wallet is not None and wallet.user_id != linking.id:
                raise WalletTaken("this wallet already signs in to another account")
            return linking
        if wallet is not None:
            from marketpulse.accounts.service import AccountNotActive  # the service imports this module

            owner = await s.get(UserRow, wallet.user_id)
            assert owner is not None  # the foreign key cascades: a wallet never outlives its user
            if owner.status != Status.ACTIVE:  # refused before the nonce is spent: nothing changes
                raise AccountNotActive(owner.status)
            return owner
        user = UserRow(id=str(uuid.uuid4()), email=None, email_key=None, password_hash=None, role=Role.USER.value,
                       status=Status.ACTIVE.value, plan=DEFAULT_PLAN, created_at_ms=now, verified_at_ms=None,
                       updated_at_ms=now)
        s.add(user)
        await s.flush()
        return user

    async def of_user(self, user_id: str) -> list[WalletRow]:
        async with self.accounts.sessions() as s:
            stmt = select(WalletRow).where(WalletRow.user_id == user_id).order_by(WalletRow.created_at_ms)
            return list((await s.execute(stmt)).scalars())


def _base58(value: str, field: str, size: int) -> bytes:
    try:
        raw = base58.b58decode(value)
    except ValueError:
        raise WalletRefused(field, "not base58") from None
    if len(raw) != size:
        raise WalletRefused(field, f"must decode to {size} bytes, not {len(raw)}")
    return raw
