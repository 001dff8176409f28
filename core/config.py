"""Settings: the only place that reads the environment.

`Settings.from_env()` parses every variable once, fails loudly with all problems listed at once,
and never prints a secret (`repr` and `safe_dict` redact them). Everything else in the code base
takes a `Settings` (or plain keyword arguments), never `os.environ`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


class SettingsError(ValueError):
    """The environment holds missing or malformed settings; the message lists every problem."""


_SECRET_FIELDS = frozenset({"database_url", "redis_url", "encryption_keys", "metrics_token"})
_ENVIRONMENTS = ("dev", "test", "prod")
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_:{}.-]{0,64}$")


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of a Souk process. Build with `Settings.from_env()` or directly in tests."""

    database_url: str
    redis_url: str
    jwt_key_dir: Path
    env: str = "dev"
    database_schema: str = "public"
    database_pool_min: int = 2
    database_pool_max: int = 20
    redis_prefix: str = "souk:"
    migrate_on_start: bool = True
    jwt_active_kid: str | None = None
    jwt_issuer: str = "souk"
    jwt_audience: str = "souk"
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    max_body_bytes: int = 1_048_576
    login_rate_per_account: int = 50  # failed logins per account (all addresses) per window
    login_rate_per_address: int = 30
    login_rate_window_s: int = 300
    # new checkouts and wallet top-ups per buyer per window (replays of a key are free)
    checkout_rate: int = 10
    checkout_rate_window_s: int = 60
    topup_rate: int = 10
    topup_rate_window_s: int = 3600
    payment_provider: str = "none"
    log_level: str = "INFO"
    log_json: bool = True
    gc_gen0_threshold: int = 10_000  # 0: leave the interpreter's collector alone (gctune.py)
    default_currency: str = "USD"
    encryption_keys: Mapping[str, str] = field(default_factory=dict)
    encryption_active_kid: str | None = None
    platform_fee_bps: int = 800
    # Commerce: how long checkout holds stock and money, and the background jobs' pace.
    reservation_ttl_s: int = 600
    reservation_sweep_interval_s: int = 5
    settlement_hold_s: int = 3 * 86_400
    settlement_interval_s: int = 60
    commerce_job_batch: int = 100
    ledger_metrics_interval_s: int = 60  # how often the ledger gauges are read
    # Auctions (auctions/): per-user bid rate, wallet rule for bidding, winner payment window,
    # closing poll interval and group-commit batch bound.
    auction_bid_rate: int = 20
    auction_bid_rate_window_s: int = 10
    auction_bid_deposit: int = 0
    auction_payment_window_s: int = 900
    auction_close_poll_ms: int = 250
    auction_max_batch: int = 500
    # most pool connections this process's bid writers hold at once (0: half the pool)
    auction_writer_connections: int = 0
    # how long a wallet balance that covers a bid is trusted for the next bids (0: every batch)
    auction_funds_cache_ms: int = 1000
    # how long each commit's recorded announcement (auction_publications) is kept: it is read
    # only to re-publish announcements lost between a commit and its publication, seconds later
    auction_publications_keep_s: int = 86_400
    # days the bid attempts' audit rows of an ended auction are kept (0: for good); its
    # accepted bids are always kept
    auction_attempts_keep_days: int = 0
    auction_closer: bool = True  # run the closing/settling loop in this process
    auction_routing: bool = False  # one owner process per auction (auctions/routing.py)
    # Benchmark only ("cost of durability"): answer bids before their COMMIT. Refused in prod.
    auction_ack_before_commit: bool = False
    # Real-time hub (realtime/); see README "Websocket hub settings".
    ws_max_connections: int = 10_000
    ws_max_frame_bytes: int = 65_536
    ws_max_subscriptions: int = 128
    ws_command_rate: int = 20
    ws_command_burst: int = 50
    ws_outbox_max_bytes: int = 1_048_576
    ws_flush_delay_ms: int = 20
    ws_sweep_slice: int = 256  # most connections written per event-loop turn by a fan-out sweep
    ws_sweep_slice_ms: int = 1  # ... and most time spent writing per turn
    ws_drain_s: float = 10.0
    realtime_history_size: int = 300
    realtime_history_ttl_s: int = 300
    realtime_recover_max: int = 300
    realtime_meta_ttl_s: int = 86_400
    realtime_sharded_pubsub: bool = False
    # REDIS_URL names one node of a Redis Cluster (the others are discovered): see README
    redis_cluster: bool = False
    realtime_presence_ttl_s: int = 15
    chat_max_chars: int = 500
    chat_rate: int = 5
    chat_rate_window_s: int = 10
    # Rider tracking and dispatch (tracking/); see tracking/README.md.
    tracking_max_speed_mps: int = 55
    tracking_max_accuracy_m: int = 100
    tracking_future_tolerance_s: int = 60
    tracking_max_age_s: int = 6 * 3600
    tracking_offline_s: int = 60
    tracking_keep_days: int = 30
    tracking_flush_ms: int = 200
    tracking_flush_rows: int = 2000
    tracking_buffer_rows: int = 200_000
    tracking_geofence_m: int = 150
    tracking_min_eta_speed_mps: float = 2.0
    order_position_hz: float = 1.0
    dispatch_fanout: int = 3
    dispatch_radius_m: int = 3000
    dispatch_max_radius_m: int = 20_000
    dispatch_widen: float = 2.0
    dispatch_offer_ttl_s: int = 30
    dispatch_max_rounds: int = 5
    dispatch_on_packed: bool = False
    # Security (SECURITY.md): live websockets re-checked against revocations, request-header
    # bounds, login and registration limits, trusted proxies, who may read /metrics, browser
    # origins (CORS, websocket), the currencies top-ups accept.
    ws_revocation_recheck_s: int = 30
    auth_revocation_recheck_s: int = 5  # "not revoked" kept this long while on the bus; 0: off
    http_max_header_bytes: int = 32_768  # request line + headers; more: 431
    http_max_headers: int = 100  # more: 431
    http_header_timeout_s: int = 10  # a connection must send a request's headers within this
    login_failures_per_address: int = 5  # wrong passwords per (account, address) per window
    register_rate_per_address: int = 10
    register_rate_window_s: int = 3600
    trusted_proxies: tuple[str, ...] = ()  # addresses/CIDRs whose X-Forwarded-For is believed
    metrics_token: str | None = None  # /metrics needs `Authorization: Bearer <token>`
    metrics_port: int = 0  # >0: /metrics only on its own listener on this port
    metrics_host: str = "127.0.0.1"
    cors_origins: tuple[str, ...] = ()  # browser origins allowed by CORS ("*": any)
    ws_origins: tuple[str, ...] = ()  # websocket Origins accepted (empty: any)
    currencies: tuple[str, ...] = ()  # accepted by top-ups (empty: DEFAULT_CURRENCY only)

    @property
    def accepted_currencies(self) -> frozenset[str]:
        return frozenset(self.currencies or (self.default_currency,))
    # Live video (streaming/): WHIP/WHEP, see streaming/README.md.
    webrtc_host_addresses: tuple[str, ...] = ()  # ICE host candidates; empty: every interface
    streaming_public_url: str = ""  # this process's base URL for 307s; empty: the request's
    show_publisher_grace_s: float = 30.0
    streaming_max_viewers_per_show: int = 500
    streaming_max_viewers: int = 1000  # per process
    streaming_max_publishers: int = 20  # per process
    streaming_max_sdp_bytes: int = 32_768
    streaming_connect_timeout_s: float = 15.0  # ICE + DTLS must complete within
    streaming_media_timeout_s: float = 10.0  # a publisher silent this long is gone
    streaming_lease_s: float = 10.0  # Redis lease of a show's owner process
    streaming_keyframe_interval_ms: int = 500  # most one keyframe request upstream per interval
    streaming_viewer_queue: int = 512  # media frames queued per viewer before dropping
    streaming_max_pending_handshakes: int = 16  # viewer joins not yet connected, per process

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.safe_dict().items())
        return f"Settings({shown})"

    def safe_dict(self) -> dict[str, Any]:
        """The settings with secrets redacted: safe to log or show an operator."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("database_url", "redis_url"):
                value = _redact_url(value)
            elif f.name in _SECRET_FIELDS:
                value = "***" if value else value
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse settings from `environ` (default `os.environ`).

        Raises `SettingsError` naming every missing or malformed variable.
        """
        env = os.environ if environ is None else environ
        parser = _Parser(env)
        settings = cls(
            database_url=parser.required("DATABASE_URL", _check_url(("postgres", "postgresql"))),
            redis_url=parser.required("REDIS_URL", _check_url(("redis", "rediss", "unix"))),
            jwt_key_dir=Path(parser.string("JWT_KEY_DIR", ".devdata/jwt")),
            env=parser.choice("SOUK_ENV", _ENVIRONMENTS, "dev"),
            database_schema=parser.matching("DATABASE_SCHEMA", _SCHEMA_RE, "public"),
            database_pool_min=parser.integer("DATABASE_POOL_MIN", 2, low=1, high=1000),
            database_pool_max=parser.integer("DATABASE_POOL_MAX", 20, low=1, high=1000),
            redis_prefix=parser.matching("REDIS_PREFIX", _PREFIX_RE, "souk:"),
            migrate_on_start=parser.boolean("MIGRATE_ON_START", True),
            jwt_active_kid=parser.optional("JWT_ACTIVE_KID"),
            jwt_issuer=parser.string("JWT_ISSUER", "souk"),
            jwt_audience=parser.string("JWT_AUDIENCE", "souk"),
            access_token_ttl_s=parser.integer("ACCESS_TOKEN_TTL_S", 900, low=30, high=86_400),
            refresh_token_ttl_s=parser.integer(
                "REFRESH_TOKEN_TTL_S", 30 * 24 * 3600, low=60, high=365 * 86_400
            ),
            max_body_bytes=parser.integer("MAX_BODY_BYTES", 1_048_576, low=1024, high=64 << 20),
            login_rate_per_account=parser.integer("LOGIN_RATE_PER_ACCOUNT", 50, low=1,
                                                  high=100_000),
            login_rate_per_address=parser.integer(
                "LOGIN_RATE_PER_ADDRESS", 30, low=1, high=100_000
            ),
            login_rate_window_s=parser.integer("LOGIN_RATE_WINDOW_S", 300, low=1, high=86_400),
            checkout_rate=parser.integer("CHECKOUT_RATE", 10, low=1, high=1_000_000),
            checkout_rate_window_s=parser.integer("CHECKOUT_RATE_WINDOW_S", 60, low=1,
                                                  high=86_400),
            topup_rate=parser.integer("TOPUP_RATE", 10, low=1, high=1_000_000),
            topup_rate_window_s=parser.integer("TOPUP_RATE_WINDOW_S", 3600, low=1, high=86_400),
            payment_provider=parser.choice("PAYMENT_PROVIDER", ("none", "demo"), "none"),
            log_level=parser.choice(
                "LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO", upper=True
            ),
            log_json=parser.boolean("LOG_JSON", True),
            gc_gen0_threshold=parser.integer("GC_GEN0_THRESHOLD", 10_000, low=0,
                                             high=1_000_000),
            default_currency=parser.matching("DEFAULT_CURRENCY", re.compile(r"^[A-Z]{3}$"), "USD"),
            encryption_keys=parser.key_map("ENCRYPTION_KEYS"),
            encryption_active_kid=parser.optional("ENCRYPTION_ACTIVE_KID"),
            platform_fee_bps=parser.integer("PLATFORM_FEE_BPS", 800, low=0, high=5_000),
            reservation_ttl_s=parser.integer("RESERVATION_TTL_S", 600, low=10, high=86_400),
            reservation_sweep_interval_s=parser.integer(
                "RESERVATION_SWEEP_INTERVAL_S", 5, low=1, high=3600
            ),
            settlement_hold_s=parser.integer(
                "SETTLEMENT_HOLD_S", 3 * 86_400, low=0, high=90 * 86_400
            ),
            settlement_interval_s=parser.integer("SETTLEMENT_INTERVAL_S", 60, low=1, high=86_400),
            commerce_job_batch=parser.integer("COMMERCE_JOB_BATCH", 100, low=1, high=10_000),
            ledger_metrics_interval_s=parser.integer("LEDGER_METRICS_INTERVAL_S", 60, low=1,
                                                     high=86_400),
            auction_bid_rate=parser.integer("AUCTION_BID_RATE", 20, low=1, high=100_000),
            auction_bid_rate_window_s=parser.integer(
                "AUCTION_BID_RATE_WINDOW_S", 10, low=1, high=3_600
            ),
            auction_bid_deposit=parser.integer("AUCTION_BID_DEPOSIT", 0, low=0, high=10**12),
            auction_payment_window_s=parser.integer(
                "AUCTION_PAYMENT_WINDOW_S", 900, low=0, high=30 * 86_400
            ),
            auction_close_poll_ms=parser.integer("AUCTION_CLOSE_POLL_MS", 250, low=10, high=60_000),
            auction_max_batch=parser.integer("AUCTION_MAX_BATCH", 500, low=1, high=10_000),
            auction_writer_connections=parser.integer("AUCTION_WRITER_CONNECTIONS", 0, low=0,
                                                      high=1000),
            auction_funds_cache_ms=parser.integer("AUCTION_FUNDS_CACHE_MS", 1000, low=0,
                                                  high=60_000),
            auction_publications_keep_s=parser.integer(
                "AUCTION_PUBLICATIONS_KEEP_S", 86_400, low=3_600, high=365 * 86_400
            ),
            auction_attempts_keep_days=parser.integer("AUCTION_ATTEMPTS_KEEP_DAYS", 0, low=0,
                                                      high=36_500),
            auction_closer=parser.boolean("AUCTION_CLOSER", True),
            auction_routing=parser.boolean("AUCTION_ROUTING", False),
            auction_ack_before_commit=parser.boolean("AUCTION_ACK_BEFORE_COMMIT", False),
            ws_max_connections=parser.integer("WS_MAX_CONNECTIONS", 10_000, low=1, high=1_000_000),
            ws_max_frame_bytes=parser.integer(
                "WS_MAX_FRAME_BYTES", 65_536, low=1024, high=16 << 20
            ),
            ws_max_subscriptions=parser.integer("WS_MAX_SUBSCRIPTIONS", 128, low=1, high=10_000),
            ws_command_rate=parser.integer("WS_COMMAND_RATE", 20, low=1, high=100_000),
            ws_command_burst=parser.integer("WS_COMMAND_BURST", 50, low=1, high=100_000),
            ws_outbox_max_bytes=parser.integer(
                "WS_OUTBOX_MAX_BYTES", 1_048_576, low=4096, high=256 << 20
            ),
            ws_flush_delay_ms=parser.integer("WS_FLUSH_DELAY_MS", 20, low=0, high=1000),
            ws_sweep_slice=parser.integer("WS_SWEEP_SLICE", 256, low=1, high=100_000),
            ws_sweep_slice_ms=parser.integer("WS_SWEEP_SLICE_MS", 1, low=1, high=1000),
            ws_drain_s=float(parser.integer("WS_DRAIN_S", 10, low=0, high=600)),
            realtime_history_size=parser.integer(
                "REALTIME_HISTORY_SIZE", 300, low=0, high=1_000_000
            ),
            realtime_history_ttl_s=parser.integer(
                "REALTIME_HISTORY_TTL_S", 300, low=1, high=30 * 86_400
            ),
            realtime_recover_max=parser.integer("REALTIME_RECOVER_MAX", 300, low=0, high=100_000),
            realtime_meta_ttl_s=parser.integer(
                "REALTIME_META_TTL_S", 86_400, low=60, high=365 * 86_400
            ),
            realtime_sharded_pubsub=parser.boolean("REALTIME_SHARDED_PUBSUB", False),
            redis_cluster=parser.boolean("REDIS_CLUSTER", False),
            realtime_presence_ttl_s=parser.integer(
                "REALTIME_PRESENCE_TTL_S", 15, low=3, high=3600
            ),
            chat_max_chars=parser.integer("CHAT_MAX_CHARS", 500, low=1, high=10_000),
            chat_rate=parser.integer("CHAT_RATE", 5, low=1, high=10_000),
            chat_rate_window_s=parser.integer("CHAT_RATE_WINDOW_S", 10, low=1, high=3600),
            # Rider tracking and dispatch
            tracking_max_speed_mps=parser.integer("TRACKING_MAX_SPEED_MPS", 55, low=1, high=1000),
            tracking_max_accuracy_m=parser.integer("TRACKING_MAX_ACCURACY_M", 100, low=1,
                                                   high=100_000),
            tracking_future_tolerance_s=parser.integer("TRACKING_FUTURE_TOLERANCE_S", 60, low=0,
                                                       high=86_400),
            tracking_max_age_s=parser.integer("TRACKING_MAX_AGE_S", 6 * 3600, low=10,
                                              high=7 * 86_400),
            tracking_offline_s=parser.integer("TRACKING_OFFLINE_S", 60, low=5, high=86_400),
            tracking_keep_days=parser.integer("TRACKING_KEEP_DAYS", 30, low=1, high=3650),
            tracking_flush_ms=parser.integer("TRACKING_FLUSH_MS", 200, low=10, high=60_000),
            tracking_flush_rows=parser.integer("TRACKING_FLUSH_ROWS", 2000, low=1, high=100_000),
            tracking_buffer_rows=parser.integer("TRACKING_BUFFER_ROWS", 200_000, low=100,
                                                high=10_000_000),
            tracking_geofence_m=parser.integer("TRACKING_GEOFENCE_M", 150, low=5, high=10_000),
            tracking_min_eta_speed_mps=float(parser.integer("TRACKING_MIN_ETA_SPEED_MPS", 2,
                                                            low=1, high=100)),
            order_position_hz=float(parser.integer("ORDER_POSITION_HZ", 1, low=1, high=50)),
            dispatch_fanout=parser.integer("DISPATCH_FANOUT", 3, low=1, high=50),
            dispatch_radius_m=parser.integer("DISPATCH_RADIUS_M", 3000, low=50, high=500_000),
            dispatch_max_radius_m=parser.integer("DISPATCH_MAX_RADIUS_M", 20_000, low=50,
                                                 high=1_000_000),
            dispatch_widen=float(parser.integer("DISPATCH_WIDEN_PERCENT", 200, low=100,
                                                high=1000)) / 100,
            dispatch_offer_ttl_s=parser.integer("DISPATCH_OFFER_TTL_S", 30, low=1, high=3600),
            dispatch_max_rounds=parser.integer("DISPATCH_MAX_ROUNDS", 5, low=1, high=100),
            dispatch_on_packed=parser.boolean("DISPATCH_ON_PACKED", False),
            ws_revocation_recheck_s=parser.integer("WS_REVOCATION_RECHECK_S", 30, low=1,
                                                   high=3600),
            auth_revocation_recheck_s=parser.integer("AUTH_REVOCATION_RECHECK_S", 5, low=0,
                                                     high=60),
            http_max_header_bytes=parser.integer("HTTP_MAX_HEADER_BYTES", 32_768, low=1024,
                                                 high=1 << 20),
            http_max_headers=parser.integer("HTTP_MAX_HEADERS", 100, low=8, high=10_000),
            http_header_timeout_s=parser.integer("HTTP_HEADER_TIMEOUT_S", 10, low=1, high=300),
            login_failures_per_address=parser.integer("LOGIN_FAILURES_PER_ADDRESS", 5, low=1,
                                                      high=10_000),
            register_rate_per_address=parser.integer("REGISTER_RATE_PER_ADDRESS", 10, low=1,
                                                     high=1_000_000),
            register_rate_window_s=parser.integer("REGISTER_RATE_WINDOW_S", 3600, low=1,
                                                  high=86_400),
            trusted_proxies=parser.items("TRUSTED_PROXIES", _check_network),
            metrics_token=parser.optional("METRICS_TOKEN"),
            metrics_port=parser.integer("METRICS_PORT", 0, low=0, high=65_535),
            metrics_host=parser.string("METRICS_HOST", "127.0.0.1"),
            cors_origins=parser.items("CORS_ORIGINS", _check_origin),
            ws_origins=parser.items("WS_ORIGINS", _check_origin),
            currencies=parser.items("CURRENCIES", _check_currency),
            webrtc_host_addresses=parser.addresses("WEBRTC_HOST_ADDRESSES"),
            streaming_public_url=parser.string("STREAMING_PUBLIC_URL", "").rstrip("/"),
            show_publisher_grace_s=parser.number("SHOW_PUBLISHER_GRACE_S", 30.0, low=0,
                                                 high=86_400),
            streaming_max_viewers_per_show=parser.integer("STREAMING_MAX_VIEWERS_PER_SHOW", 500,
                                                          low=0, high=100_000),
            streaming_max_viewers=parser.integer("STREAMING_MAX_VIEWERS", 1000, low=0,
                                                 high=100_000),
            streaming_max_publishers=parser.integer("STREAMING_MAX_PUBLISHERS", 20, low=0,
                                                    high=10_000),
            streaming_max_sdp_bytes=parser.integer("STREAMING_MAX_SDP_BYTES", 32_768, low=1024,
                                                   high=1 << 20),
            streaming_connect_timeout_s=parser.number("STREAMING_CONNECT_TIMEOUT_S", 15.0,
                                                      low=0.5, high=600),
            streaming_media_timeout_s=parser.number("STREAMING_MEDIA_TIMEOUT_S", 10.0, low=0.5,
                                                    high=600),
            streaming_lease_s=parser.number("STREAMING_LEASE_S", 10.0, low=1, high=600),
            streaming_keyframe_interval_ms=parser.integer("STREAMING_KEYFRAME_INTERVAL_MS", 500,
                                                          low=0, high=60_000),
            streaming_viewer_queue=parser.integer("STREAMING_VIEWER_QUEUE", 512, low=16,
                                                  high=100_000),
            streaming_max_pending_handshakes=parser.integer(
                "STREAMING_MAX_PENDING_HANDSHAKES", 16, low=1, high=10_000),
        )
        parser.check(
            settings.database_pool_min <= settings.database_pool_max,
            "DATABASE_POOL_MIN must not exceed DATABASE_POOL_MAX",
        )
        parser.check(
            settings.auction_writer_connections < settings.database_pool_max,
            "AUCTION_WRITER_CONNECTIONS must leave connections for requests "
            "(below DATABASE_POOL_MAX)",
        )
        parser.check(
            settings.ws_command_burst >= settings.ws_command_rate,
            "WS_COMMAND_BURST must be at least WS_COMMAND_RATE",
        )
        parser.check(
            not (settings.env == "prod" and settings.payment_provider == "demo"),
            "PAYMENT_PROVIDER=demo is refused when SOUK_ENV=prod",
        )
        parser.check(
            not (settings.redis_cluster and settings.auction_routing),
            "AUCTION_ROUTING is not supported with REDIS_CLUSTER (it finds a gone owner by the "
            "subscriber count PUBLISH returns, which a cluster counts on one node only)",
        )
        parser.check(
            not (settings.env == "prod" and settings.auction_ack_before_commit),
            "AUCTION_ACK_BEFORE_COMMIT is a benchmark switch, refused when SOUK_ENV=prod",
        )
        parser.check(
            not (settings.env == "prod" and not settings.metrics_token
                 and not settings.metrics_port),
            "SOUK_ENV=prod needs METRICS_TOKEN or METRICS_PORT (/metrics shows balances)",
        )
        parser.check(
            settings.metrics_token is None or len(settings.metrics_token) >= 16,
            "METRICS_TOKEN must be at least 16 characters",
        )
        parser.finish()
        return settings


class _Parser:
    """Collects every problem so one start-up failure names them all."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._env = environ
        self._problems: list[str] = []

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self._problems.append(problem)

    def finish(self) -> None:
        if self._problems:
            raise SettingsError("invalid settings: " + "; ".join(self._problems))

    def _raw(self, name: str) -> str | None:
        value = self._env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def required(self, name: str, check: Any) -> str:
        value = self._raw(name)
        if value is None:
            self._problems.append(f"{name} is required")
            return ""
        problem = check(value)
        if problem:
            self._problems.append(f"{name} {problem}")
        return value

    def optional(self, name: str) -> str | None:
        return self._raw(name)

    def string(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def matching(self, name: str, pattern: re.Pattern[str], default: str) -> str:
        value = self._env.get(name)
        if value is None:
            return default
        if not pattern.match(value):
            self._problems.append(f"{name} must match {pattern.pattern}")
            return default
        return value

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self._problems.append(f"{name} must be an integer, got {raw!r}")
            return default
        if not low <= value <= high:
            self._problems.append(f"{name} must be between {low} and {high}, got {value}")
            return default
        return value

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self._problems.append(f"{name} must be a number, got {raw!r}")
            return default
        if not low <= value <= high:
            self._problems.append(f"{name} must be between {low} and {high}, got {value}")
            return default
        return value

    def addresses(self, name: str) -> tuple[str, ...]:
        """A comma-separated list of IP addresses (empty: none)."""
        raw = self._raw(name)
        if raw is None:
            return ()
        out: list[str] = []
        for item in raw.split(","):
            try:
                out.append(str(ipaddress.ip_address(item.strip())))
            except ValueError:
                self._problems.append(f"{name} must be comma-separated IP addresses, got {raw!r}")
                return ()
        return tuple(out)

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        self._problems.append(f"{name} must be a boolean (true/false), got {raw!r}")
        return default

    def choice(
        self, name: str, options: tuple[str, ...], default: str, *, upper: bool = False
    ) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        value = raw.upper() if upper else raw.lower()
        if value not in options:
            self._problems.append(f"{name} must be one of {', '.join(options)}, got {raw!r}")
            return default
        return value

    def items(self, name: str, check: Any) -> tuple[str, ...]:
        """A comma-separated list, each item checked by `check` (None: fine)."""
        raw = self._raw(name)
        if raw is None:
            return ()
        out = tuple(item.strip() for item in raw.split(",") if item.strip())
        for item in out:
            problem = check(item)
            if problem:
                self._problems.append(f"{name} {problem}, got {item!r}")
                return ()
        return out

    def key_map(self, name: str) -> dict[str, str]:
        """Parse `kid1:base64key,kid2:base64key`; values stay opaque strings here."""
        raw = self._raw(name)
        if raw is None:
            return {}
        out: dict[str, str] = {}
        for item in raw.split(","):
            kid, sep, key = item.strip().partition(":")
            if not sep or not kid or not key:
                self._problems.append(f"{name} must be a comma-separated list of kid:key")
                return {}
            out[kid] = key
        return out


def _check_network(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return "must list IP addresses or CIDR networks"
    return None


def _check_origin(value: str) -> str | None:
    if value == "*":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        return "must list origins like https://shop.example (scheme://host[:port]) or *"
    return None


def _check_currency(value: str) -> str | None:
    return None if re.fullmatch(r"[A-Z]{3}", value) else "must list ISO 4217 codes (USD,EUR)"


def _check_url(schemes: tuple[str, ...]) -> Any:
    def check(value: str) -> str | None:
        scheme = urlsplit(value).scheme
        if scheme not in schemes:
            return f"must be a URL with scheme {' or '.join(schemes)}"
        return None

    return check
