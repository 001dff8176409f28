"""Every environment variable Souk reads: its name, the `Settings` field it fills, how it is read
(`Parser`'s readers), its default and bounds. The order is the order problems are listed in."""

from __future__ import annotations

import re
from pathlib import Path

from core.config.parser import (
    Parser,
    Var,
    check_currency,
    check_network,
    check_origin,
    check_url,
)

REQUIRED = Parser.required
OPTIONAL = Parser.optional
STRING = Parser.string
MATCHING = Parser.matching
CHOICE = Parser.choice
BOOLEAN = Parser.boolean
INTEGER = Parser.integer
NUMBER = Parser.number
ITEMS = Parser.items
ADDRESSES = Parser.addresses
KEY_MAP = Parser.key_map

_ENVIRONMENTS = ("dev", "test", "prod")
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_:{}.-]{0,64}$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


def _percent(value: int) -> float:
    return float(value) / 100


def _without_trailing_slash(url: str) -> str:
    return url.rstrip("/")


VARIABLES: tuple[Var, ...] = (
    # Stores, tokens, limits of requests, logs
    Var("DATABASE_URL", "database_url", REQUIRED, accept=check_url(("postgres", "postgresql"))),
    Var("REDIS_URL", "redis_url", REQUIRED, accept=check_url(("redis", "rediss", "unix"))),
    Var("JWT_KEY_DIR", "jwt_key_dir", STRING, ".devdata/jwt", then=Path),
    Var("SOUK_ENV", "env", CHOICE, "dev", accept=_ENVIRONMENTS),
    Var("DATABASE_SCHEMA", "database_schema", MATCHING, "public", accept=_SCHEMA_RE),
    Var("DATABASE_POOL_MIN", "database_pool_min", INTEGER, 2, 1, 1000),
    Var("DATABASE_POOL_MAX", "database_pool_max", INTEGER, 20, 1, 1000),
    Var("REDIS_PREFIX", "redis_prefix", MATCHING, "souk:", accept=_PREFIX_RE),
    Var("MIGRATE_ON_START", "migrate_on_start", BOOLEAN, True),
    Var("JWT_ACTIVE_KID", "jwt_active_kid", OPTIONAL),
    Var("JWT_ISSUER", "jwt_issuer", STRING, "souk"),
    Var("JWT_AUDIENCE", "jwt_audience", STRING, "souk"),
    Var("ACCESS_TOKEN_TTL_S", "access_token_ttl_s", INTEGER, 900, 30, 86_400),
    Var("REFRESH_TOKEN_TTL_S", "refresh_token_ttl_s", INTEGER, 30 * 24 * 3600, 60, 365 * 86_400),
    Var("MAX_BODY_BYTES", "max_body_bytes", INTEGER, 1_048_576, 1024, 64 << 20),
    Var("LOGIN_RATE_PER_ACCOUNT", "login_rate_per_account", INTEGER, 50, 1, 100_000),
    Var("LOGIN_RATE_PER_ADDRESS", "login_rate_per_address", INTEGER, 30, 1, 100_000),
    Var("LOGIN_RATE_WINDOW_S", "login_rate_window_s", INTEGER, 300, 1, 86_400),
    Var("CHECKOUT_RATE", "checkout_rate", INTEGER, 10, 1, 1_000_000),
    Var("CHECKOUT_RATE_WINDOW_S", "checkout_rate_window_s", INTEGER, 60, 1, 86_400),
    Var("TOPUP_RATE", "topup_rate", INTEGER, 10, 1, 1_000_000),
    Var("TOPUP_RATE_WINDOW_S", "topup_rate_window_s", INTEGER, 3600, 1, 86_400),
    Var("PAYMENT_PROVIDER", "payment_provider", CHOICE, "none", accept=("none", "demo")),
    Var("LOG_LEVEL", "log_level", CHOICE, "INFO", accept=("DEBUG", "INFO", "WARNING", "ERROR")),
    Var("LOG_JSON", "log_json", BOOLEAN, True),
    Var("GC_GEN0_THRESHOLD", "gc_gen0_threshold", INTEGER, 10_000, 0, 1_000_000),
    Var("DEFAULT_CURRENCY", "default_currency", MATCHING, "USD", accept=_CURRENCY_RE),
    Var("ENCRYPTION_KEYS", "encryption_keys", KEY_MAP),
    Var("ENCRYPTION_ACTIVE_KID", "encryption_active_kid", OPTIONAL),

    # Commerce: how long checkout holds stock and money, and the background jobs' pace
    Var("PLATFORM_FEE_BPS", "platform_fee_bps", INTEGER, 800, 0, 5_000),
    Var("RESERVATION_TTL_S", "reservation_ttl_s", INTEGER, 600, 10, 86_400),
    Var("RESERVATION_SWEEP_INTERVAL_S", "reservation_sweep_interval_s", INTEGER, 5, 1, 3600),
    Var("SETTLEMENT_HOLD_S", "settlement_hold_s", INTEGER, 3 * 86_400, 0, 90 * 86_400),
    Var("SETTLEMENT_INTERVAL_S", "settlement_interval_s", INTEGER, 60, 1, 86_400),
    Var("COMMERCE_JOB_BATCH", "commerce_job_batch", INTEGER, 100, 1, 10_000),
    Var("LEDGER_METRICS_INTERVAL_S", "ledger_metrics_interval_s", INTEGER, 60, 1, 86_400),
    Var("IDEMPOTENCY_KEEP_S", "idempotency_keep_s", INTEGER, 86_400, 60, 30 * 86_400),
    Var("IDEMPOTENCY_PRUNE_INTERVAL_S", "idempotency_prune_interval_s", INTEGER, 300, 1, 86_400),

    # Auctions (auctions/)
    Var("AUCTION_BID_RATE", "auction_bid_rate", INTEGER, 20, 1, 100_000),
    Var("AUCTION_BID_RATE_WINDOW_S", "auction_bid_rate_window_s", INTEGER, 10, 1, 3_600),
    Var("AUCTION_BID_DEPOSIT", "auction_bid_deposit", INTEGER, 0, 0, 10**12),
    Var("AUCTION_PAYMENT_WINDOW_S", "auction_payment_window_s", INTEGER, 900, 0, 30 * 86_400),
    Var("AUCTION_CLOSE_POLL_MS", "auction_close_poll_ms", INTEGER, 250, 10, 60_000),
    Var("AUCTION_MAX_BATCH", "auction_max_batch", INTEGER, 500, 1, 10_000),
    Var("AUCTION_WRITER_CONNECTIONS", "auction_writer_connections", INTEGER, 0, 0, 1000),
    Var("AUCTION_FUNDS_CACHE_MS", "auction_funds_cache_ms", INTEGER, 1000, 0, 60_000),
    Var("AUCTION_PUBLICATIONS_KEEP_S", "auction_publications_keep_s",
        INTEGER, 86_400, 3_600, 365 * 86_400),
    Var("AUCTION_ATTEMPTS_KEEP_DAYS", "auction_attempts_keep_days", INTEGER, 0, 0, 36_500),
    Var("AUCTION_CLOSER", "auction_closer", BOOLEAN, True),
    Var("AUCTION_ROUTING", "auction_routing", BOOLEAN, False),
    Var("AUCTION_ACK_BEFORE_COMMIT", "auction_ack_before_commit", BOOLEAN, False),

    # Real-time hub (realtime/); see README "Websocket hub settings"
    Var("WS_MAX_CONNECTIONS", "ws_max_connections", INTEGER, 10_000, 1, 1_000_000),
    Var("WS_MAX_FRAME_BYTES", "ws_max_frame_bytes", INTEGER, 65_536, 1024, 16 << 20),
    Var("WS_MAX_SUBSCRIPTIONS", "ws_max_subscriptions", INTEGER, 128, 1, 10_000),
    Var("WS_COMMAND_RATE", "ws_command_rate", INTEGER, 20, 1, 100_000),
    Var("WS_COMMAND_BURST", "ws_command_burst", INTEGER, 50, 1, 100_000),
    Var("WS_OUTBOX_MAX_BYTES", "ws_outbox_max_bytes", INTEGER, 1_048_576, 4096, 256 << 20),
    Var("WS_FLUSH_DELAY_MS", "ws_flush_delay_ms", INTEGER, 20, 0, 1000),
    Var("WS_SWEEP_SLICE", "ws_sweep_slice", INTEGER, 256, 1, 100_000),
    Var("WS_SWEEP_SLICE_MS", "ws_sweep_slice_ms", INTEGER, 1, 1, 1000),
    Var("WS_DRAIN_S", "ws_drain_s", INTEGER, 10, 0, 600, then=float),
    Var("REALTIME_HISTORY_SIZE", "realtime_history_size", INTEGER, 300, 0, 1_000_000),
    Var("REALTIME_HISTORY_TTL_S", "realtime_history_ttl_s", INTEGER, 300, 1, 30 * 86_400),
    Var("REALTIME_RECOVER_MAX", "realtime_recover_max", INTEGER, 300, 0, 100_000),
    Var("REALTIME_META_TTL_S", "realtime_meta_ttl_s", INTEGER, 86_400, 60, 365 * 86_400),
    Var("REALTIME_SHARDED_PUBSUB", "realtime_sharded_pubsub", BOOLEAN, False),
    Var("REDIS_CLUSTER", "redis_cluster", BOOLEAN, False),
    Var("REALTIME_PRESENCE_TTL_S", "realtime_presence_ttl_s", INTEGER, 15, 3, 3600),
    Var("CHAT_MAX_CHARS", "chat_max_chars", INTEGER, 500, 1, 10_000),
    Var("CHAT_RATE", "chat_rate", INTEGER, 5, 1, 10_000),
    Var("CHAT_RATE_WINDOW_S", "chat_rate_window_s", INTEGER, 10, 1, 3600),

    # Rider tracking and dispatch (tracking/); see tracking/README.md
    Var("TRACKING_MAX_SPEED_MPS", "tracking_max_speed_mps", INTEGER, 55, 1, 1000),
    Var("TRACKING_MAX_ACCURACY_M", "tracking_max_accuracy_m", INTEGER, 100, 1, 100_000),
    Var("TRACKING_FUTURE_TOLERANCE_S", "tracking_future_tolerance_s", INTEGER, 60, 0, 86_400),
    Var("TRACKING_MAX_AGE_S", "tracking_max_age_s", INTEGER, 6 * 3600, 10, 7 * 86_400),
    Var("TRACKING_OFFLINE_S", "tracking_offline_s", INTEGER, 60, 5, 86_400),
    Var("TRACKING_KEEP_DAYS", "tracking_keep_days", INTEGER, 30, 1, 3650),
    Var("TRACKING_FLUSH_MS", "tracking_flush_ms", INTEGER, 200, 10, 60_000),
    Var("TRACKING_FLUSH_ROWS", "tracking_flush_rows", INTEGER, 2000, 1, 100_000),
    Var("TRACKING_BUFFER_ROWS", "tracking_buffer_rows", INTEGER, 200_000, 100, 10_000_000),
    Var("TRACKING_GEOFENCE_M", "tracking_geofence_m", INTEGER, 150, 5, 10_000),
    Var("TRACKING_MIN_ETA_SPEED_MPS", "tracking_min_eta_speed_mps", INTEGER, 2, 1, 100, then=float),
    Var("ORDER_POSITION_HZ", "order_position_hz", INTEGER, 1, 1, 50, then=float),
    Var("DISPATCH_FANOUT", "dispatch_fanout", INTEGER, 3, 1, 50),
    Var("DISPATCH_RADIUS_M", "dispatch_radius_m", INTEGER, 3000, 50, 500_000),
    Var("DISPATCH_MAX_RADIUS_M", "dispatch_max_radius_m", INTEGER, 20_000, 50, 1_000_000),
    Var("DISPATCH_WIDEN_PERCENT", "dispatch_widen", INTEGER, 200, 100, 1000, then=_percent),
    Var("DISPATCH_OFFER_TTL_S", "dispatch_offer_ttl_s", INTEGER, 30, 1, 3600),
    Var("DISPATCH_MAX_ROUNDS", "dispatch_max_rounds", INTEGER, 5, 1, 100),
    Var("DISPATCH_ON_PACKED", "dispatch_on_packed", BOOLEAN, False),

    # Security (SECURITY.md)
    Var("WS_REVOCATION_RECHECK_S", "ws_revocation_recheck_s", INTEGER, 30, 1, 3600),
    Var("AUTH_REVOCATION_RECHECK_S", "auth_revocation_recheck_s", INTEGER, 5, 0, 60),
    Var("HTTP_MAX_HEADER_BYTES", "http_max_header_bytes", INTEGER, 32_768, 1024, 1 << 20),
    Var("HTTP_MAX_HEADERS", "http_max_headers", INTEGER, 100, 8, 10_000),
    Var("HTTP_HEADER_TIMEOUT_S", "http_header_timeout_s", INTEGER, 10, 1, 300),
    Var("LOGIN_FAILURES_PER_ADDRESS", "login_failures_per_address", INTEGER, 5, 1, 10_000),
    Var("REGISTER_RATE_PER_ADDRESS", "register_rate_per_address", INTEGER, 10, 1, 1_000_000),
    Var("REGISTER_RATE_WINDOW_S", "register_rate_window_s", INTEGER, 3600, 1, 86_400),
    Var("TRUSTED_PROXIES", "trusted_proxies", ITEMS, accept=check_network),
    Var("METRICS_TOKEN", "metrics_token", OPTIONAL),
    Var("METRICS_PORT", "metrics_port", INTEGER, 0, 0, 65_535),
    Var("METRICS_HOST", "metrics_host", STRING, "127.0.0.1"),
    Var("CORS_ORIGINS", "cors_origins", ITEMS, accept=check_origin),
    Var("WS_ORIGINS", "ws_origins", ITEMS, accept=check_origin),
    Var("CURRENCIES", "currencies", ITEMS, accept=check_currency),

    # Live video (streaming/): WHIP/WHEP, see streaming/README.md
    Var("WEBRTC_HOST_ADDRESSES", "webrtc_host_addresses", ADDRESSES),
    Var("STREAMING_PUBLIC_URL", "streaming_public_url", STRING, "", then=_without_trailing_slash),
    Var("SHOW_PUBLISHER_GRACE_S", "show_publisher_grace_s", NUMBER, 30.0, 0, 86_400),
    Var("STREAMING_MAX_VIEWERS_PER_SHOW", "streaming_max_viewers_per_show",
        INTEGER, 500, 0, 100_000),
    Var("STREAMING_MAX_VIEWERS", "streaming_max_viewers", INTEGER, 1000, 0, 100_000),
    Var("STREAMING_MAX_PUBLISHERS", "streaming_max_publishers", INTEGER, 20, 0, 10_000),
    Var("STREAMING_MAX_SDP_BYTES", "streaming_max_sdp_bytes", INTEGER, 32_768, 1024, 1 << 20),
    Var("STREAMING_CONNECT_TIMEOUT_S", "streaming_connect_timeout_s", NUMBER, 15.0, 0.5, 600),
    Var("STREAMING_MEDIA_TIMEOUT_S", "streaming_media_timeout_s", NUMBER, 10.0, 0.5, 600),
    Var("STREAMING_LEASE_S", "streaming_lease_s", NUMBER, 10.0, 1, 600),
    Var("STREAMING_KEYFRAME_INTERVAL_MS", "streaming_keyframe_interval_ms",
        INTEGER, 500, 0, 60_000),
    Var("STREAMING_VIEWER_QUEUE", "streaming_viewer_queue", INTEGER, 512, 16, 100_000),
    Var("STREAMING_MAX_PENDING_HANDSHAKES", "streaming_max_pending_handshakes",
        INTEGER, 16, 1, 10_000),
)
