"""Accounts tables: users, sign-in sessions (one refresh-token family each), refresh tokens and one-time email
tokens. Every token is stored as its SHA-256 only; times are epoch milliseconds like the rest of the schema."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketpulse.storage.database import Base


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # As the user typed it (shown back to them); None: a wallet-only account, which signs in by signature.
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    email_key: Mapped[str | None] = mapped_column(String(320), unique=True, nullable=True)  # casefolded identity
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)  # None: no password sign-in
    role: Mapped[str] = mapped_column(String(8))  # user | admin
    status: Mapped[str] = mapped_column(String(10))  # active | suspended | banned
    plan: Mapped[str] = mapped_column(String(16))  # a canonical name from accounts.plans
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    verified_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)


class AuthSessionRow(Base):
    """One signed-in device: its refresh tokens form a family; revoking the session ends every token of it."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    last_used_at_ms: Mapped[int] = mapped_column(BigInteger)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger)
    revoked_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the address it signed in from

    __table_args__ = (Index("ix_auth_sessions_user", "user_id"),)


class RefreshTokenRow(Base):
    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(36), ForeignKey("auth_sessions.id", ondelete="CASCADE"))
    issued_at_ms: Mapped[int] = mapped_column(BigInteger)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger)
    used_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # spent: presenting it again is reuse

    __table_args__ = (Index("ix_refresh_tokens_session", "session_id"),)


class EmailTokenRow(Base):
    """A single-use, time-limited token mailed to the user: verify the address or reset the password."""

    __tablename__ = "email_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(16))  # verify_email | reset_password
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger)
    used_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_email_tokens_user_purpose", "user_id", "purpose"),)


class AuditRow(Base):
    """One admin or security-relevant action. Append-only: the store offers no update or delete, and the database
    refuses both (triggers, migration 0009). It names users by id only, so erasing a user keeps the fact and loses
    the personal data."""

    __tablename__ = "audit_log"

    # Insertion order, so entries written in the same millisecond still list in the order they happened.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    actor_id: Mapped[str | None] = mapped_column(String(36), nullable=True)  # None: the system or an anonymous caller
    action: Mapped[str] = mapped_column(String(48))  # e.g. admin.user_updated, auth.password_changed
    target_type: Mapped[str] = mapped_column(String(16))  # user | session
    target_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    old_values: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    new_values: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        Index("ix_audit_log_created", "created_at_ms"),
        Index("ix_audit_log_actor_created", "actor_id", "created_at_ms"),
        Index("ix_audit_log_target", "target_id"),
    )


class ApiKeyRow(Base):
    """A personal API key: the secret is shown once and stored as its SHA-256; the prefix identifies it in lists."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(64))  # comma-separated: read, trade, alerts
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    last_used_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_api_keys_user", "user_id"),)


class WalletRow(Base):
    """A wallet that signs in as its user: an Ethereum address (EIP-55 checksummed) or a Solana public key
    (base58). One wallet belongs to one user; a user may hold several."""

    __tablename__ = "wallets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    chain: Mapped[str] = mapped_column(String(8))  # ethereum | solana
    address: Mapped[str] = mapped_column(String(64))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    last_used_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("chain", "address", name="uq_wallets_chain_address"),
        Index("ix_wallets_user", "user_id"),
    )


class WalletNonceRow(Base):
    """A single-use, time-limited challenge a wallet signs. Stored as its SHA-256 like every other token."""

    __tablename__ = "wallet_nonces"

    nonce_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    chain: Mapped[str] = mapped_column(String(8))  # which verify endpoint may spend it
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger)
    used_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class TotpFactorRow(Base):
    """A user's TOTP authenticator: pending until a first code confirms it, then asked for at every password
    sign-in. The secret must be readable to check codes, so unlike tokens it is stored as is."""

    __tablename__ = "totp_factors"

    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(64))  # base32
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    confirmed_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_step: Mapped[int] = mapped_column(BigInteger)  # newest 30 s step a code was accepted for: no code twice


class RecoveryCodeRow(Base):
    """A single-use code that stands in for the authenticator; stored as its SHA-256."""

    __tablename__ = "recovery_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    used_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_recovery_codes_user", "user_id"),)


class NotificationPreferencesRow(Base):
    """A user's notification preferences (time zone, quiet hours, default channels): one row per user, absent
    until first saved. Keyed by `owner_id` so privacy export and erasure find it like every owned row."""

    __tablename__ = "notification_preferences"

    owner_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    time_zone: Mapped[str] = mapped_column(String(64))  # an IANA name, e.g. Europe/Berlin
    quiet_hours_start: Mapped[str | None] = mapped_column(String(5), nullable=True)  # HH:MM local, or None: none
    quiet_hours_end: Mapped[str | None] = mapped_column(String(5), nullable=True)
    channels: Mapped[str] = mapped_column(String(64))  # comma-separated, from accounts.plans.ALL_CHANNELS
    quiet_hours_low_priority: Mapped[str] = mapped_column(String(4), default="hold", server_default="hold")
    flood_limit_per_minute: Mapped[int] = mapped_column(Integer, default=20, server_default="20")  # 0: none
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)


class ExternalIdentityRow(Base):
    """An account at an OpenID provider (Google) that signs in as its user, keyed by the provider's stable `sub`
    (never by email, which a provider account can change)."""

    __tablename__ = "external_identities"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(16))  # google
    subject: Mapped[str] = mapped_column(String(255))  # the id_token's `sub`
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)  # as the provider last said
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    last_used_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("provider", "subject", name="uq_external_identities_provider_subject"),
        Index("ix_external_identities_user", "user_id"),
    )


class OidcStateRow(Base):
    """One started OpenID sign-in: the state the provider echoes back (stored as its SHA-256), with the nonce and
    PKCE verifier the callback needs. Single-use and short-lived, so a replayed callback is refused."""

    __tablename__ = "oidc_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    nonce: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    next_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger)
    used_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class PasskeyRow(Base):
    """A WebAuthn credential (passkey) of a user: its public key (COSE) and the authenticator's signature counter,
    which must grow at every use (a lower one means a cloned authenticator)."""

    __tablename__ = "passkeys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    credential_id: Mapped[str] = mapped_column(String(1024), unique=True)  # base64url, as the browser names it
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(64))
    transports: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    last_used_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_passkeys_user", "user_id"),)


class PasskeyChallengeRow(Base):
    """A WebAuthn challenge handed to a browser: single-use, expiring, and for one purpose (register, signin or
    second_factor) and, when it names one, one user."""

    __tablename__ = "passkey_challenges"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    challenge: Mapped[str] = mapped_column(String(128), unique=True)  # base64url; public (it is sent to the browser)
    purpose: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"),
                                                nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger)
    used_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class SigninFailureRow(Base):
    """Failed sign-ins of one account (its casefolded address) or one client address, stored as a SHA-256 so the
    table holds no address: the count spaces attempts out (exponential delay) and, past the limit, locks."""

    __tablename__ = "signin_failures"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # account | client
    subject_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)  # in a row, within the window since the last one
    last_failed_at_ms: Mapped[int] = mapped_column(BigInteger)
    locked_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # None: not locked
