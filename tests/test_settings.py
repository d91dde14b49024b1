"""Every setting does what README says: each one that changes behaviour has a test proving it.

`PROOF` names that test for every setting (most live beside the capability they configure; the ones that only
carry a value into a component whose behaviour is tested elsewhere are proven here, through the same factory the
processes use). A setting added without a proof fails `test_every_setting_has_a_proof`.
"""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
HERE = "tests/test_settings.py"
ACCOUNTS = "tests/accounts/test_auth_api.py"
ACCOUNT_SETTINGS = "tests/accounts/test_account_settings.py"
USDT = "tests/onchain/test_usdt_payments.py"
METERING = "tests/payments/test_metering.py"
PORTFOLIO_EXCHANGE = "tests/portfolio/test_exchange_sync.py"
PORTFOLIO_WALLETS = "tests/portfolio/test_wallets.py"

WALLETS = "tests/accounts/test_wallets.py"
GOOGLE = "tests/accounts/test_google.py"
PASSKEYS = "tests/accounts/test_passkeys.py"
DELIVERY = "tests/delivery/test_dispatcher.py"
BREAKER = f"{DELIVERY}::test_the_breaker_opens_the_fallback_delivers_and_a_half_open_probe_closes_it"
CHANNELS = "tests/delivery/test_channels.py"
WEBHOOK = "tests/signals/test_webhook.py"
PAYMENTS = "tests/payments/test_views.py"
UPGRADE = f"{PAYMENTS}::test_upgrading_to_pro_by_card_changes_the_plan_at_once_and_tells_live_connections"

PROOF: dict[str, str] = {
    "stripe_secret_key": f"{PAYMENTS}::test_without_a_secret_key_card_payments_answer_503",
    "stripe_api_base": UPGRADE,
    "stripe_webhook_secret": f"{PAYMENTS}::test_a_bad_signature_is_a_400_and_changes_nothing",
    "stripe_price_pro": f"{PAYMENTS}::test_each_plans_price_setting_sells_that_plan",
    "stripe_price_elite": f"{PAYMENTS}::test_each_plans_price_setting_sells_that_plan",
    "stripe_price_credits_100": f"{PAYMENTS}::test_checkout_refusals_name_the_field",
    "stripe_price_credits_1000": f"{PAYMENTS}::"
                                 "test_a_credit_pack_adds_credits_once_and_a_refund_takes_them_back_or_shows_the_debt",
    "stripe_meter_event_name": f"{METERING}::test_the_metered_price_joins_each_subscription_and_events_go_to_the_"
                               "configured_meter",
    "stripe_price_api_calls": f"{METERING}::test_the_metered_price_joins_each_subscription_and_events_go_to_the_"
                              "configured_meter",
    "api_usage_flush_s": f"{METERING}::test_counts_flush_on_their_own_after_the_interval",
    "api_meter_report_s": f"{METERING}::test_reporting_runs_on_the_lease_holder_and_a_takeover_carries_on",
    "stripe_grace_period_s": "tests/payments/test_service.py::"
                             "test_a_failed_renewal_keeps_the_plan_through_the_grace_period_then_drops_to_free",
    "delivery_timeout_s": f"{DELIVERY}::test_500s_timeouts_and_429s_are_retried_at_the_schedules_delays_then_dead",
    "delivery_lease_s": f"{DELIVERY}::test_a_killed_dispatchers_claim_is_taken_over_when_its_lease_expires",
    "delivery_batch_size": f"{DELIVERY}::test_a_killed_dispatchers_claim_is_taken_over_when_its_lease_expires",
    "delivery_breaker_failures": BREAKER,
    "delivery_breaker_open_s": BREAKER,
    "delivery_smtp_fallback_host": f"{CHANNELS}::test_mail_goes_through_the_fallback_relay_while_the_first_is_down",
    "delivery_smtp_fallback_port": f"{CHANNELS}::test_mail_goes_through_the_fallback_relay_while_the_first_is_down",
    "webhook_allow_private": "tests/delivery/test_views.py::"
                             "test_webhooks_to_our_own_network_are_refused_unless_allowed",
    "telegram_api_base": f"{DELIVERY}::test_telegram_discord_and_slack_get_their_formats",
    "telegram_bot_token": f"{DELIVERY}::test_telegram_discord_and_slack_get_their_formats",
    "twilio_api_base": BREAKER,
    "twilio_account_sid": BREAKER,
    "twilio_auth_token": BREAKER,
    "twilio_from": BREAKER,
    "vonage_api_base": BREAKER,
    "vonage_api_key": BREAKER,
    "vonage_api_secret": BREAKER,
    "vonage_from": BREAKER,
    "vapid_private_key": f"{CHANNELS}::test_web_push_reaches_the_push_service_encrypted_with_vapid",
    "vapid_public_key": f"{CHANNELS}::test_web_push_reaches_the_push_service_encrypted_with_vapid",
    "vapid_subject": f"{CHANNELS}::test_web_push_reaches_the_push_service_encrypted_with_vapid",
    "admin_require_two_factor": "tests/accounts/test_two_factor.py::test_admins_can_be_required_to_use_two_factor",
    "admin_allowed_ips": "tests/accounts/test_admin_console.py::"
                         "test_the_admin_allowlist_refuses_other_addresses_before_anything_else",
    "webhook_allowed_ips": f"{WEBHOOK}::test_the_allowlist_believes_forwarded_for_only_from_configured_proxies",
    "webhook_trusted_proxies": f"{WEBHOOK}::test_the_allowlist_believes_forwarded_for_only_from_configured_proxies",
    "webhook_rate_per_minute": f"{WEBHOOK}::test_a_flood_on_one_token_is_429",
    "webhook_queue_limit": f"{WEBHOOK}::test_past_the_queue_limit_a_request_is_503_and_the_waiting_ones_are_all_stored",
    "siwe_domain": f"{WALLETS}::test_siwe_accepts_the_chains_and_domain_the_settings_name",
    "siwe_uri": f"{WALLETS}::test_siwe_accepts_the_chains_and_domain_the_settings_name",
    "siwe_chain_ids": f"{WALLETS}::test_siwe_accepts_the_chains_and_domain_the_settings_name",
    "wallet_nonce_ttl_s": f"{WALLETS}::test_wallet_nonces_live_as_long_as_the_setting_says",
    "google_client_id": f"{GOOGLE}::test_google_sign_in_creates_a_verified_free_user",
    "google_client_secret": f"{GOOGLE}::test_google_sign_in_creates_a_verified_free_user",
    "google_discovery_url": f"{GOOGLE}::test_google_sign_in_creates_a_verified_free_user",
    "webauthn_rp_id": f"{PASSKEYS}::test_rp_id_and_origin_follow_the_settings_or_the_public_url",
    "webauthn_origin": f"{PASSKEYS}::test_rp_id_and_origin_follow_the_settings_or_the_public_url",
    "database_url": "tests/e2e/test_demo_process.py::test_demo_serves_table_alerts_pages_and_metrics",
    "bus_url": "tests/e2e/test_multiprocess.py::test_ingest_two_workers_two_apis",
    "bus_claim_idle_ms": f"{HERE}::test_bus_claim_idle_ms_reaches_the_redis_bus",
    "redis_url": "tests/api/test_app.py::test_redis_fanout_follows_the_settings",
    "data_dir": "tests/e2e/test_demo_process.py::test_demo_serves_table_alerts_pages_and_metrics",
    "retention_days": "tests/marketdata/test_store.py::test_recorder_prunes_by_market_time_once_an_hour",
    "env": "tests/cli/test_serve.py::test_the_built_in_ingest_key_is_refused_outside_dev",
    "host": "tests/cli/test_serve.py::test_host_and_port_default_to_their_settings",
    "port": "tests/cli/test_serve.py::test_host_and_port_default_to_their_settings",
    "ingest_api_key": "tests/detection/test_views.py::test_401_without_or_with_wrong_key_even_for_an_invalid_body",
    "max_body_bytes": "tests/detection/test_views.py::test_413_over_the_body_limit",
    "ingest_time_window_s": "tests/detection/test_views.py::test_the_ingest_window_is_a_setting_and_allows_clock_skew",
    "metrics_port": "tests/api/test_health_metrics.py::test_a_worker_serves_its_own_metrics_on_the_metrics_port",
    "trusted_hosts": "tests/api/test_headers.py::test_a_configured_host_is_answered_and_star_answers_any",
    "source": "tests/cli/test_serve.py::test_source_setting_chooses_the_source",
    "binance_rest_url": "tests/marketdata/binance/test_source.py::test_open_interest_in_usd_every_refresh_interval",
    "binance_ws_url": "tests/marketdata/binance/test_source.py::"
                      "test_ticker_and_mark_frames_become_market_rows_on_the_bus",
    "replay_speed": "tests/marketdata/test_replay.py::test_source_defaults_to_a_scaled_clock_at_the_replay_speed",
    "replay_file": f"{HERE}::test_replay_file_and_symbols_choose_what_is_played",
    "replay_symbols": f"{HERE}::test_replay_file_and_symbols_choose_what_is_played",
    "replay_start": "tests/test_demo.py::test_restart_resumes_after_the_newest_stored_row",
    "replay_seed": f"{HERE}::test_replay_seed_changes_the_synthesized_minutes",
    "open_interest_refresh_s": "tests/marketdata/binance/test_source.py::"
                               "test_open_interest_in_usd_every_refresh_interval",
    "open_interest_stale_s": f"{HERE}::test_open_interest_staleness_follows_its_settings",
    "open_interest_dangerously_stale_s": f"{HERE}::test_open_interest_staleness_follows_its_settings",
    "spike_ratio": f"{HERE}::test_spike_thresholds_reach_the_scanners_detector",
    "spike_min_quote_volume": f"{HERE}::test_spike_thresholds_reach_the_scanners_detector",
    "paper_starting_balance": f"{HERE}::test_paper_settings_reach_the_paper_service",
    "paper_taker_fee_bps": f"{HERE}::test_paper_settings_reach_the_paper_service",
    "paper_maker_fee_bps": f"{HERE}::test_paper_settings_reach_the_paper_service",
    "paper_slippage_bps": f"{HERE}::test_paper_settings_reach_the_paper_service",
    "paper_max_position_notional": f"{HERE}::test_paper_settings_reach_the_paper_service",
    "paper_daily_loss_limit_pct": f"{HERE}::test_paper_settings_reach_the_paper_service",
    "paper_leverage": f"{HERE}::test_paper_settings_reach_the_paper_service",
    "paper_history_bars": f"{HERE}::test_paper_settings_reach_the_paper_service",
    "backtest_workers": f"{HERE}::test_backtest_workers_sizes_the_job_pool",
    "backtest_retention_days": "tests/backtest/test_backtest_jobs_api.py::"
                               "test_finished_jobs_past_the_retention_go_with_their_reports",
    "backtest_max_queued_per_owner": "tests/backtest/test_backtest_jobs_api.py::"
                                     "test_an_owner_may_have_only_so_many_jobs_unfinished",
    "backtest_reports_max_mb": "tests/backtest/test_backtest_jobs_api.py::"
                               "test_reports_stay_within_their_disk_budget_oldest_first",
    "spike_scan_grace_ms": f"{HERE}::test_the_workers_scanner_waits_the_configured_grace",
    "market_debounce_ms": "tests/realtime/test_realtime.py::"
                          "test_market_updates_are_coalesced_per_symbol_until_the_debounce_fires",
    "deployment": "tests/realtime/test_realtime.py::test_the_socketio_channel_is_the_deployments_own",
    "socketio_channel": "tests/realtime/test_realtime.py::test_the_socketio_channel_is_the_deployments_own",
    "node_modules_dir": "tests/web/test_assets.py::test_configured_directory_is_used",
    "jwt_secret_key": f"{ACCOUNT_SETTINGS}::test_the_jwt_secret_key_signs_and_checks_access_tokens",
    "access_token_ttl_s": f"{ACCOUNTS}::test_token_lifetimes_follow_the_settings",
    "refresh_token_ttl_s": f"{ACCOUNTS}::test_token_lifetimes_follow_the_settings",
    "admin_refresh_token_ttl_s": "tests/accounts/test_admin_api.py::test_administrators_sessions_end_sooner",
    "admin_access_ttl_s": "tests/accounts/test_tokens.py::test_an_admins_access_token_expires_sooner",
    "verify_email_ttl_s": f"{ACCOUNT_SETTINGS}::test_mailed_links_live_as_long_as_their_settings_say",
    "password_reset_ttl_s": f"{ACCOUNT_SETTINGS}::test_mailed_links_live_as_long_as_their_settings_say",
    "auth_email_rate_limit": f"{ACCOUNTS}::test_mail_requests_are_rate_limited_per_address_known_or_not",
    "signin_failure_limit": f"{ACCOUNTS}::test_failed_sign_ins_lock_the_account_even_for_the_right_password",
    "signin_client_failure_limit": f"{ACCOUNTS}::test_failed_sign_ins_lock_the_client_across_accounts",
    "rate_limit_storage": f"{ACCOUNTS}::test_processes_sharing_redis_share_the_mail_limit",
    "rate_limits": "tests/ratelimit/test_rate_limits.py::test_off_switches_enforcement_off",
    "account_unlock_ttl_s": "tests/accounts/test_brute_force.py::test_the_unlock_link_lives_as_long_as_its_setting",
    "public_url": f"{ACCOUNT_SETTINGS}::test_mail_from_and_public_url_shape_the_mail",
    "mail_from": f"{ACCOUNT_SETTINGS}::test_mail_from_and_public_url_shape_the_mail",
    "smtp_host": f"{ACCOUNT_SETTINGS}::test_without_smtp_host_no_mail_goes_out",
    "smtp_port": f"{ACCOUNTS}::test_signup_mails_a_link_that_verifies_once_then_signin_and_me",
    "smtp_username": f"{ACCOUNT_SETTINGS}::test_smtp_login_and_starttls_follow_the_settings",
    "smtp_password": f"{ACCOUNT_SETTINGS}::test_smtp_login_and_starttls_follow_the_settings",
    "smtp_starttls": f"{ACCOUNT_SETTINGS}::test_smtp_login_and_starttls_follow_the_settings",
    "usdt_chains": f"{USDT}::test_an_invoice_names_address_unique_amount_chain_and_expiry",
    "usdt_invoice_ttl_s": f"{USDT}::test_an_invoice_names_address_unique_amount_chain_and_expiry",
    "usdt_watch_interval_s": f"{USDT}::test_the_watcher_under_its_lease_finds_unsubmitted_payments",
    "portfolio_secret_key": f"{PORTFOLIO_EXCHANGE}::test_connect_sync_and_value_an_exchange_account",
    "portfolio_exchange_urls": f"{PORTFOLIO_EXCHANGE}::test_connect_sync_and_value_an_exchange_account",
    "portfolio_evm_chains": f"{PORTFOLIO_WALLETS}::test_an_evm_wallet_balances_and_transfers",
    "portfolio_solana_rpc_url": f"{PORTFOLIO_WALLETS}::test_a_solana_wallet_balances_and_activity",
    "portfolio_solana_tokens": f"{PORTFOLIO_WALLETS}::test_a_solana_wallet_balances_and_activity",
    "lease_ttl_s": "tests/coordination/test_lease.py::test_paper_trading_runs_under_a_lease_of_the_configured_ttl",
    "log_level": f"{HERE}::test_log_level_and_json_shape_the_log",
    "log_json": f"{HERE}::test_log_level_and_json_shape_the_log",
}


def test_every_setting_has_a_proof() -> None:
    missing = sorted(set(Settings.model_fields) - set(PROOF))
    assert not missing, f"settings without a test proving them (add one and name it in PROOF): {missing}"
    gone = sorted(set(PROOF) - set(Settings.model_fields))
    assert not gone, f"PROOF names settings that no longer exist: {gone}"


@pytest.mark.parametrize("name", sorted(PROOF))
def test_each_proof_exists(name: str) -> None:
    path, test = PROOF[name].split("::")
    source = (ROOT / path).read_text()
    assert re.search(rf"^(async )?def {test}\(", source, re.M), f"{PROOF[name]} (the proof of {name}) is not there"


# --- the proofs that live here -------------------------------------------------------------------------------


def test_bus_claim_idle_ms_reaches_the_redis_bus() -> None:
    from marketpulse.bus.factory import create_bus

    bus: Any = create_bus("redis://127.0.0.1:6379/0", claim_idle_ms=1234)  # not connected until used
    assert bus.claim_idle_ms == 1234


def test_replay_file_and_symbols_choose_what_is_played(tmp_path: Path) -> None:
    from marketpulse.marketdata.replay import ReplaySource
    from marketpulse.marketdata.sample import usdm_perp_1h_path

    source = ReplaySource(Settings(replay_symbols=3))
    three = source.tape.symbols
    assert len(three) == 3
    # A file of one symbol's hours: that symbol first, then made-up ones to make up the count.
    import gzip

    with gzip.open(usdm_perp_1h_path(), "rt") as f:
        lines = f.read().splitlines()
    header, rows = lines[0], [line for line in lines[1:] if ",ETHUSDT," in f",{line},"]
    own = tmp_path / "eth.csv"
    own.write_text("\n".join([header, *rows]) + "\n")
    played = ReplaySource(Settings(replay_file=own, replay_symbols=2)).tape.symbols
    assert played[0] == "ETHUSDT" and len(played) == 2 and played[1] not in three


def test_replay_seed_changes_the_synthesized_minutes() -> None:
    from marketpulse.marketdata.replay import ReplayTape
    from marketpulse.marketdata.sample import usdm_perp_1h_path

    hour = 1_760_126_400_000

    def minutes(seed: int) -> list[float]:
        tape = ReplayTape.load(usdm_perp_1h_path(), symbols=2, seed=seed)
        return [c.close for m in range(0, 60 * 60_000, 60_000) for c in tape.closed_minute(hour + m)]

    assert minutes(7) == minutes(7)
    assert minutes(7) != minutes(8)


async def test_open_interest_staleness_follows_its_settings(settings: Settings, clock: FakeClock) -> None:
    from api.serving import lifespan
    from marketpulse.api.app import create_app

    key = "settings-key"
    custom = settings.model_copy(update={"open_interest_stale_s": 10, "open_interest_dangerously_stale_s": 20,
                                         "ingest_api_key": SecretStr(key)})
    runtime = Runtime.open(custom, clock=clock, bus=MemoryBus())
    app = create_app(runtime)
    try:
        async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                    base_url="http://localhost") as http:
            r = await http.post("/api/v1/market/open-interest/ingest", json={"data": {"BTCUSDT": 1e9}},
                                headers={"X-API-Key": key})
            assert r.status_code in (200, 201, 202), r.text

            async def freshness() -> tuple[bool, bool]:
                body = (await http.get("/api/v1/market/open-interest")).json()
                return body["stale"], body["dangerouslyStale"]

            assert await freshness() == (False, False)
            clock.advance(10_000)
            assert await freshness() == (True, False)
            clock.advance(10_000)
            assert await freshness() == (True, True)
    finally:
        await runtime.close()


def test_spike_thresholds_reach_the_scanners_detector(runtime: Runtime) -> None:
    from marketpulse.detection.scanner import SpikeScanner

    runtime.settings = runtime.settings.model_copy(update={"spike_ratio": 4.5, "spike_min_quote_volume": 123.0})
    detector = SpikeScanner(runtime).detector
    assert (detector.ratio, detector.min_quote_volume) == (4.5, 123.0)


def test_paper_settings_reach_the_paper_service(runtime: Runtime) -> None:
    from marketpulse.services import Services

    runtime.settings = runtime.settings.model_copy(update={
        "paper_starting_balance": 777.0, "paper_taker_fee_bps": 6.0, "paper_maker_fee_bps": 1.5,
        "paper_slippage_bps": 3.0, "paper_max_position_notional": 5_000.0, "paper_daily_loss_limit_pct": 0.2,
        "paper_leverage": 3.0, "paper_history_bars": 321,
    })
    services = Services.build(runtime)
    config = services.paper.config
    assert (config.starting_balance, config.taker_fee_bps, config.maker_fee_bps, config.slippage_bps,
            config.max_position_notional, config.daily_loss_limit_pct, config.leverage) == (
        777.0, 6.0, 1.5, 3.0, 5_000.0, 0.2, 3.0)
    limits = config.limits(config.plan.value)
    assert (limits.max_position_notional, limits.daily_loss_limit_pct) == (5_000.0, 0.2)
    assert services.deployments.history_bars == 321


async def test_backtest_workers_sizes_the_job_pool(runtime: Runtime) -> None:
    from marketpulse.services import Services

    runtime.settings = runtime.settings.model_copy(update={"backtest_workers": 3})
    services = Services.build(runtime)
    try:
        assert services.backtests._pool._max_workers == 3
    finally:
        await services.close()


async def test_the_workers_scanner_waits_the_configured_grace(runtime: Runtime, monkeypatch) -> None:
    from marketpulse import roles
    from marketpulse.detection import scanner

    built: list[int] = []
    real = scanner.SpikeScanner

    class Recording(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            built.append(self.grace_ms)

    monkeypatch.setattr(scanner, "SpikeScanner", Recording)
    runtime.settings = runtime.settings.model_copy(update={"spike_scan_grace_ms": 1234})
    stoppers = await roles.start_worker(runtime, runtime.clock)
    for stop in reversed(stoppers):
        await stop()
    assert built == [1234]


def test_log_level_and_json_shape_the_log() -> None:
    import structlog

    from marketpulse.logs import configure_logging

    out = io.StringIO()
    configure_logging(Settings(log_level="WARNING", log_json=True), stream=out)
    try:
        log = structlog.get_logger("settings-test")
        log.info("hidden at WARNING")
        log.warning("shown", n=1)
        [line] = out.getvalue().splitlines()
        assert json.loads(line) | {"timestamp": None} == {"event": "shown", "n": 1, "level": "warning",
                                                          "timestamp": None}
    finally:
        configure_logging(Settings())
        logging.getLogger().setLevel(logging.WARNING)
