"""The one settings object. Every value comes from a `PULSE_*` environment variable (or `.env`)."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Known to everyone who reads this file: only for development (PULSE_ENV=dev), see `uses_dev_ingest_key`.
DEV_INGEST_KEY = "dev-ingest-key"
DEV_JWT_SECRET = "dev-jwt-secret-key-change-me-in-production"  # likewise: anyone could sign tokens with it

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def ip_networks(text: str) -> list[IPNetwork]:
    """'10.0.0.0/8, 192.168.1.7' → networks (a bare address is a /32 or /128); ValueError naming a bad entry."""
    out = []
    for entry in filter(None, (e.strip() for e in text.split(","))):
        try:
            out.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR network (like 10.0.0.0/8)") from None
    return out


class UsdtChain(BaseModel):
    """One EVM chain USDT is accepted on (an entry of `PULSE_USDT_CHAINS`)."""

    model_config = ConfigDict(extra="forbid")

    chain_id: int = Field(ge=1, description="EIP-155 chain id the RPC must answer (1 Ethereum, 42161 Arbitrum, …)")
    rpc_url: str = Field(min_length=1, description="JSON-RPC HTTP URL of a node of that chain")
    token: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="the USDT contract's address")
    receiving_address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="the platform's address paid to")
    confirmations: int = Field(12, ge=1, le=10_000, description="blocks a transfer must be buried under")


class PortfolioEvmChain(BaseModel):
    """One EVM chain wallets can be followed on (an entry of `PULSE_PORTFOLIO_EVM_CHAINS`)."""

    model_config = ConfigDict(extra="forbid")

    chain_id: int = Field(ge=1, description="EIP-155 chain id the RPC must answer")
    rpc_url: str = Field(min_length=1, description="JSON-RPC HTTP URL of a node of that chain")
    native: str = Field("ETH", min_length=1, max_length=16, description="the native coin's symbol (ETH, BNB, POL…)")
    tokens: dict[str, str] = Field(
        {}, description="ERC-20 tokens followed: symbol → contract address (balances and Transfer logs)")
    start_block: int = Field(0, ge=0, description="the first block a new wallet's history is read from")
    blocks_per_sync: int = Field(
        2_000, ge=1, le=1_000_000, description="blocks one sync reads (logs and native transfers); the rest next time")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PULSE_", env_file=".env", extra="ignore")

    # --- storage and bus ---
    database_url: str = Field(
        "sqlite+aiosqlite:///./var/marketpulse.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///… or postgresql+asyncpg://…",
    )
    bus_url: str = Field("memory://", description="memory:// (in-process) or redis://host:port/db (Redis Streams)")
    bus_claim_idle_ms: int = Field(
        30_000, ge=100, description="Redis bus: a message unacknowledged this long is claimed by another consumer"
    )
    redis_url: str | None = Field(
        None, description="Redis for Socket.IO fan-out; defaults to bus_url when that is redis"
    )
    lease_ttl_s: float = Field(
        15.0, gt=0.1, le=3600, description="Singleton duties (paper trading's runner): a worker that stops renewing "
        "its lease for this long is replaced by another",
    )
    data_dir: Path = Field(Path("./var"), description="Where the SQLite file, Parquet library and reports live")
    retention_days: int = Field(30, ge=1, description="Candles and market snapshots older than this are pruned")

    # --- HTTP ---
    env: Literal["dev", "production"] = Field(
        "production", description="dev lets `pulse api`/`pulse ingest` start with the built-in ingest key "
        "(`pulse demo` sets it); production refuses to"
    )
    host: str = Field("127.0.0.1", description="Interface `pulse api`/`pulse demo` listen on (--host overrides)")
    port: int = Field(8000, ge=1, le=65535, description="Port `pulse api`/`pulse demo` listen on (--port overrides)")
    ingest_api_key: SecretStr = Field(
        SecretStr(DEV_INGEST_KEY), description="X-API-Key for the ingest endpoints; `pulse api` and `pulse ingest` "
        "refuse to start with this built-in key unless PULSE_ENV=dev"
    )
    max_body_bytes: int = Field(1_048_576, ge=0, description="Request bodies above this answer 413 (every endpoint)")
    ingest_time_window_s: int = Field(
        86_400, ge=60, description="Ingested alert `timestamp`s and open-interest `asOf` must lie from this many "
        "seconds before the process's (market) clock to 60 s after it; others answer 422"
    )
    metrics_port: int = Field(
        0, ge=0, le=65535, description="`pulse worker`/`pulse ingest` serve Prometheus /metrics on this port (0: "
        "off); the API serves /metrics on its own port",
    )
    trusted_hosts: str = Field(
        "127.0.0.1,localhost,[::1]",
        description="Host headers the API answers, comma-separated (`*` any, `*.example.com` a domain); PULSE_HOST "
        "is added unless 0.0.0.0; others get 400, so a DNS-rebinding page can't drive a local API",
    )

    # --- market data ---
    source: Literal["replay", "binance"] = Field(
        "replay", description="Market data `pulse ingest`/`pulse demo` publish (--source overrides) and the exchange "
        "label the recorder stores candles under: replay or binance"
    )
    binance_rest_url: str = Field("https://fapi.binance.com", description="Binance USD-M REST base URL")
    binance_ws_url: str = Field(
        "wss://fstream.binance.com", description="The connector appends /market/stream?streams=…"
    )
    replay_speed: float = Field(60.0, gt=0, description="Replay speed: 60 means one market minute per real second")
    replay_file: Path | None = Field(None, description="Klines CSV to replay; default is the bundled sample")
    replay_symbols: int = Field(120, ge=1, description="How many symbols the replay plays (most liquid first)")
    replay_start: datetime | None = Field(
        None,
        description="Market time the replay starts at (ISO 8601, UTC); default: 20 minutes before the file's "
        "strongest market-wide volume jump (2025-10-10T20:40Z for the bundled sample, the liquidation cascade)",
    )
    replay_seed: int = Field(
        7, description="Seed of the replay's synthetic minutes, funding, open interest and symbols"
    )
    open_interest_refresh_s: int = Field(
        300, ge=1, description="Binance source: seconds between open-interest refreshes"
    )
    open_interest_stale_s: int = Field(360, description="OI older than this is 'stale' (served, refresh due)")
    open_interest_dangerously_stale_s: int = Field(1800, description="OI older than this is 'dangerouslyStale'")

    # --- volume-spike detector ---
    spike_ratio: float = Field(3.0, gt=0, description="Current hour quote volume ≥ ratio × previous hour")
    spike_min_quote_volume: float = Field(3_000_000.0, ge=0, description="…and ≥ this many USDT")

    # --- paper trading, risk manager, backtest jobs ---
    paper_starting_balance: float = Field(10_000.0, gt=0, description="A new paper account's balance, in USDT")
    paper_taker_fee_bps: float = Field(
        4.0, ge=0, description="Paper fee for market and stop fills and limits marketable when placed, basis points"
    )
    paper_maker_fee_bps: float = Field(2.0, ge=0, description="Paper fee for resting limit fills, basis points")
    paper_slippage_bps: float = Field(0.0, ge=0, description="Paper slippage against the trader on market/stop fills")
    paper_max_position_notional: float = Field(
        100_000.0, gt=0, description="Risk: largest position (per symbol and book: your trades or one deployment), "
        "abs(quantity) × fill price in USDT"
    )
    paper_daily_loss_limit_pct: float = Field(
        0.05, ge=0, lt=1, description="Risk: halt new exposure until the next UTC day after losing this fraction of "
        "the day's starting equity (0 disables)",
    )
    paper_leverage: float = Field(
        1.0, ge=1, le=125, description="Risk: paper positions need abs(notional) / leverage of the account's equity as "
        "margin (1: no borrowing, total notional ≤ equity)",
    )
    paper_history_bars: int = Field(
        5_000, ge=100, description="Bars of history a deployed strategy computes its signals over"
    )
    backtest_workers: int = Field(2, ge=1, description="Backtest jobs run at the same time (threads)")
    backtest_retention_days: int = Field(
        30, ge=1, le=3650, description="Finished backtest jobs (their results and HTML reports) older than this are "
        "deleted",
    )
    backtest_max_queued_per_owner: int = Field(
        3, ge=1, le=1000, description="Backtest jobs one owner may have queued or running at once; more answer 429",
    )
    backtest_reports_max_mb: float = Field(
        500.0, gt=0, description="Disk budget for backtest HTML reports: past it the oldest reports are removed "
        "(their jobs keep their results)",
    )

    spike_scan_grace_ms: int = Field(
        5000, ge=0, description="A scan at t runs at t + grace (market time) so late 1m candles still count"
    )

    # --- realtime ---
    market_debounce_ms: int = Field(500, ge=0, description="Socket.IO `market` event debounce")
    deployment: str | None = Field(
        None, max_length=100, description="Name of this deployment; its API processes share Socket.IO events on a "
        "channel of that name (default: named after the bus's Redis server and database), and its Redis keys "
        "(bus streams, leases, rate limits) start `pulse:{deployment}:` instead of `pulse:`"
    )
    socketio_channel: str | None = Field(
        None, max_length=200, description="Redis pub/sub channel the API processes share; default "
        "`marketpulse-socketio:` + the deployment (pub/sub ignores database numbers: two deployments on one Redis "
        "server must not share a channel)"
    )
    node_modules_dir: Path | None = Field(
        None, description="Where `npm ci` put the dashboard's front-end libraries; default ./node_modules of the "
        "working directory"
    )

    # --- accounts: sign-in, sessions, mail ---
    jwt_secret_key: SecretStr = Field(
        SecretStr(DEV_JWT_SECRET),
        description="HS256 key signing access tokens (32+ bytes), the same in every API process; `pulse api` "
        "refuses to start with this built-in key unless PULSE_ENV=dev",
    )
    access_token_ttl_s: int = Field(900, ge=30, le=86_400, description="Lifetime of an access token (JWT)")
    refresh_token_ttl_s: int = Field(
        30 * 86_400, ge=300, description="A sign-in session ends this long after its last refresh"
    )
    admin_access_ttl_s: int = Field(
        300, ge=30, le=86_400, description="Lifetime of an administrator's access token (shorter than a user's; the "
        "smaller of this and PULSE_ACCESS_TOKEN_TTL_S)"
    )
    admin_refresh_token_ttl_s: int = Field(
        8 * 3_600, ge=300, description="An administrator's session ends this long after its last refresh (shorter "
        "than a user's)"
    )
    verify_email_ttl_s: int = Field(86_400, ge=60, description="How long an email-verification link works")
    password_reset_ttl_s: int = Field(3_600, ge=60, description="How long a password-reset link works")
    auth_email_rate_limit: str = Field(
        "5/hour", description="Verification/reset mails asked for, per address and per client (`limits` notation)"
    )
    signin_failure_limit: str = Field(
        "5/15minutes", description="Failed sign-ins allowed per account before it answers 429 until the window passes"
    )
    signin_client_failure_limit: str = Field(
        "20/15minutes", description="Failed sign-ins allowed per client address, across accounts, before 429"
    )
    rate_limits: Literal["on", "off"] = Field(
        "on", description="Per-plan API rate limits (X-RateLimit-* headers, 429 past the plan's requests per minute or "
        "day): on, or off for load tests and benchmarks"
    )
    account_unlock_ttl_s: int = Field(
        86_400, ge=60, description="How long the mailed link that lifts an account's sign-in lock works"
    )
    rate_limit_storage: str = Field(
        "memory://", description="Where rate-limit counters live: memory:// (one process) or redis://host:port/db"
    )
    public_url: str = Field(
        "http://127.0.0.1:8000", description="The site's address as users reach it: the base of links in mail"
    )
    admin_require_two_factor: bool = Field(
        False, description="Administrators can use the admin API only once they have a second factor: TOTP turned on "
        "or a passkey registered"
    )
    admin_allowed_ips: str = Field(
        "", description="Client addresses allowed to reach /api/v1/admin/* and the /admin pages, comma-separated IPs "
        "or CIDRs (10.0.0.0/8,2001:db8::1); empty: any. Others get 403. The address is the connection's, or "
        "X-Forwarded-For's when the connection comes from a proxy uvicorn trusts (FORWARDED_ALLOW_IPS, default "
        "127.0.0.1)"
    )
    webhook_allowed_ips: str = Field(
        "", description="Client addresses allowed to POST /webhook/tradingview/{token}, comma-separated IPs or CIDRs "
        "(TradingView sends from 52.89.214.238,34.212.75.30,54.218.53.128,52.32.178.7); empty: any. Others get 403"
    )
    webhook_trusted_proxies: str = Field(
        "", description="Proxies (IPs or CIDRs) whose X-Forwarded-For the webhook allowlist believes: the client is "
        "the last address before them; from any other peer the header is ignored"
    )
    webhook_rate_per_minute: int = Field(
        120, ge=1, le=1_000_000, description="Webhook requests one signal config takes per minute (a moving "
        "window); past it 429 with Retry-After"
    )
    webhook_queue_limit: int = Field(
        10_000, ge=1, le=1_000_000, description="Webhook requests one API process lets wait for a database "
        "connection (first come, first served, no timeout); past it 503 with Retry-After and nothing stored"
    )
    siwe_domain: str = Field(
        "127.0.0.1:8000", description="The domain a Sign-In with Ethereum message must name (host[:port] users reach)"
    )
    siwe_uri: str = Field("http://127.0.0.1:8000", description="The URI a Sign-In with Ethereum message must name")
    siwe_chain_ids: list[int] = Field(
        [1], min_length=1, description="EIP-155 chain ids a Sign-In with Ethereum message may name, as JSON: [1,8453]"
    )
    wallet_nonce_ttl_s: int = Field(
        300, ge=30, le=3_600, description="How long a wallet sign-in nonce (Ethereum or Solana) can be signed and spent"
    )
    google_client_id: str | None = Field(
        None, description="OAuth client id of the Google sign-in (OpenID Connect); unset: /api/v1/auth/google/start "
        "answers 404"
    )
    google_client_secret: SecretStr | None = Field(None, description="OAuth client secret of the Google sign-in")
    google_discovery_url: str = Field(
        "https://accounts.google.com/.well-known/openid-configuration",
        description="OpenID discovery document of the Google sign-in (its endpoints, issuer and keys)",
    )
    webauthn_rp_id: str = Field(
        "", max_length=253, description="Passkeys' relying-party id (a domain); empty: PULSE_PUBLIC_URL's host "
        "(`localhost` for a loopback address: browsers refuse IP addresses)"
    )
    webauthn_origin: str = Field(
        "", max_length=512, description="The origin passkey ceremonies must come from (scheme://host[:port]); empty: "
        "PULSE_PUBLIC_URL's origin"
    )
    smtp_host: str | None = Field(None, description="SMTP server for account mail; unset: mail is not sent")
    smtp_port: int = Field(25, ge=1, le=65_535, description="SMTP server port")
    smtp_username: str | None = Field(None, description="SMTP user, when the server wants a login")
    smtp_password: SecretStr | None = Field(None, description="SMTP password, when the server wants a login")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS")
    mail_from: str = Field("marketpulse <no-reply@localhost>", description="From: of account mail")

    # --- notification delivery ---
    delivery_timeout_s: float = Field(30.0, gt=0, le=300, description="Each delivery attempt gives up after this long "
                                      "(then it is retried like a 5xx)")
    delivery_lease_s: float = Field(
        60.0, ge=1, le=3600, description="A dispatcher's claim on a batch of notifications; a dispatcher killed "
        "mid-batch leaves them to another once it expires")
    delivery_batch_size: int = Field(200, ge=1, le=10_000, description="Notifications a dispatcher claims at once")
    delivery_breaker_failures: int = Field(
        5, ge=1, description="A provider's circuit opens after this many failures in a row (its fallback takes over)")
    delivery_breaker_open_s: float = Field(
        30.0, gt=0, description="An open circuit lets one probe through after this long; success closes it")
    delivery_smtp_fallback_host: str | None = Field(
        None, description="A second SMTP relay for alert mail when the first (PULSE_SMTP_HOST) fails or its circuit "
        "is open")
    delivery_smtp_fallback_port: int = Field(25, ge=1, le=65_535, description="Port of the fallback SMTP relay")
    webhook_allow_private: bool = Field(
        False, description="Let webhook, Discord and Slack URLs reach loopback and private addresses (on in "
        "`pulse demo` and tests); off, they are refused (SSRF)")
    telegram_api_base: str = Field("https://api.telegram.org", description="Telegram Bot API base URL")
    telegram_bot_token: SecretStr | None = Field(None, description="Telegram bot token; unset: no Telegram delivery")
    twilio_api_base: str = Field("https://api.twilio.com", description="Twilio REST API base URL (primary SMS)")
    twilio_account_sid: str | None = Field(None, description="Twilio account SID")
    twilio_auth_token: SecretStr | None = Field(None, description="Twilio auth token")
    twilio_from: str | None = Field(None, description="Twilio sender number (E.164)")
    vonage_api_base: str = Field("https://rest.nexmo.com", description="Vonage SMS API base URL (fallback SMS)")
    vonage_api_key: str | None = Field(None, description="Vonage API key; set: Vonage is SMS's fallback provider")
    vonage_api_secret: SecretStr | None = Field(None, description="Vonage API secret")
    vonage_from: str | None = Field(None, description="Vonage sender (number or name)")
    vapid_private_key: SecretStr | None = Field(
        None, description="VAPID private key (PEM or base64url) for web push; unset: no web push")
    vapid_public_key: str | None = Field(None, description="VAPID public key browsers subscribe with")
    vapid_subject: str = Field("mailto:admin@localhost", description="VAPID `sub` claim: a contact for push services")

    # --- payments (Stripe) ---
    stripe_secret_key: SecretStr | None = Field(
        None, description="Stripe secret API key (sk_…); unset: the card payment endpoints answer 503")
    stripe_api_base: str = Field(
        "https://api.stripe.com", description="Stripe API base URL (a local fake Stripe in tests and `pulse demo`)")
    stripe_webhook_secret: SecretStr | None = Field(
        None, description="Webhook signing secret(s) (whsec_…), comma-separated while one is rotated: an event "
        "signed with any of them is accepted; unset: the webhook answers 400")
    stripe_price_pro: str | None = Field(None, description="Stripe Price id of the pro plan's monthly subscription")
    stripe_price_elite: str | None = Field(
        None, description="Stripe Price id of the elite plan's monthly subscription")
    stripe_price_credits_100: str | None = Field(None, description="Stripe Price id of the 100-credit pack ($10)")
    stripe_price_credits_1000: str | None = Field(
        None, description="Stripe Price id of the 1,000-credit pack ($100)")
    stripe_grace_period_s: int = Field(
        259_200, ge=0, le=60 * 86_400, description="After a failed renewal payment the plan is kept this long (for "
        "Stripe's retries and a card change); then it drops to free and the user is told")
    stripe_meter_event_name: str = Field(
        "api_calls", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$",
        description="The Stripe Billing Meter's event name that API calls past a metered plan's included quota are "
        "reported under")
    stripe_price_api_calls: str | None = Field(
        None, description="Stripe Price id of the metered API-calls price (on that meter) added to each pro/elite "
        "subscription at checkout; unset: subscriptions carry only the plan's price")
    api_usage_flush_s: float = Field(
        10.0, gt=0, le=3600, description="Each API process adds the API calls it counted to the stored monthly "
        "count this often (and when it stops)")
    api_meter_report_s: float = Field(
        300.0, gt=0, le=86_400, description="The lease holder reports metered API calls past the included quota "
        "to Stripe (as meter events) this often")
    # --- USDT paid on-chain ---
    usdt_chains: dict[str, UsdtChain] = Field(
        {}, description="JSON: chain name → {chain_id, rpc_url, token, receiving_address, "
        "confirmations}, e.g. {\"ethereum\": {\"chain_id\": 1, …}}; empty: USDT is not offered")
    usdt_invoice_ttl_s: int = Field(
        3600, ge=60, le=7 * 86_400, description="A USDT invoice must be paid within this; later: credits instead")
    usdt_watch_interval_s: float = Field(
        15.0, gt=0, le=3600, description="The USDT watcher reads new blocks' Transfer logs this often")

    # --- portfolio ---
    portfolio_secret_key: SecretStr | None = Field(
        None, description="Key sealing users' exchange API keys at rest (any long random string); unset: derived "
        "from PULSE_JWT_SECRET_KEY. Changing it makes stored keys unreadable (users connect again)")
    portfolio_exchange_urls: dict[str, str] = Field(
        {}, description="JSON: ccxt exchange id → base URL replacing its API host (a mirror, or the local fake "
        "exchange of tests and `pulse demo`); exchanges not named use their own")
    portfolio_evm_chains: dict[str, PortfolioEvmChain] = Field(
        {}, description="JSON: chain name → {chain_id, rpc_url, native, tokens: {symbol: address}, start_block, "
        "blocks_per_sync}: the chains EVM wallets can be followed on; empty: none")
    portfolio_solana_rpc_url: str | None = Field(
        None, description="Solana JSON-RPC URL for Solana wallets; unset: Solana wallets can't be connected")
    portfolio_solana_tokens: dict[str, str] = Field(
        {}, description="JSON: SPL token mint → symbol for Solana wallets' token accounts (others show their mint)")

    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_json: bool = Field(False, description="One JSON object per log line instead of the console format")

    @field_validator("admin_allowed_ips")
    @classmethod
    def _admin_allowed_ips(cls, value: str) -> str:
        ip_networks(value)  # refuse a typo at start-up rather than lock every administrator out
        return value

    @field_validator("webhook_allowed_ips", "webhook_trusted_proxies")
    @classmethod
    def _webhook_networks(cls, value: str) -> str:
        ip_networks(value)
        return value

    @field_validator("usdt_chains")
    @classmethod
    def _usdt_chains(cls, value: dict[str, UsdtChain]) -> dict[str, UsdtChain]:
        for name in value:
            if not name.isidentifier() or not name.islower():
                raise ValueError(f"chain name {name!r}: lower-case letters, digits and _ (like ethereum, bsc)")
        return value

    def admin_networks(self) -> list[IPNetwork]:
        return ip_networks(self.admin_allowed_ips)

    def uses_dev_ingest_key(self) -> bool:
        return self.ingest_api_key.get_secret_value() == DEV_INGEST_KEY

    def uses_dev_jwt_secret(self) -> bool:
        return self.jwt_secret_key.get_secret_value() == DEV_JWT_SECRET


@lru_cache
def get_settings() -> Settings:
    return Settings()
