"""The frozen `Settings` of a Souk process, built from the environment by `Settings.from_env`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from core.config.parser import Parser, problems_between
from core.config.tables import VARIABLES


class SettingsError(ValueError):
    """The environment holds missing or malformed settings; the message lists every problem."""


_SECRET_FIELDS = frozenset({"database_url", "redis_url", "encryption_keys", "metrics_token"})
_URL_FIELDS = frozenset({"database_url", "redis_url"})


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
    idempotency_keep_s: int = 86_400  # Idempotency-Key answers replayed this long, then pruned
    idempotency_prune_interval_s: int = 300
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

    @property
    def accepted_currencies(self) -> frozenset[str]:
        return frozenset(self.currencies or (self.default_currency,))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.safe_dict().items())
        return f"Settings({shown})"

    def safe_dict(self) -> dict[str, Any]:
        """The settings with secrets redacted: safe to log or show an operator."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _URL_FIELDS:
                value = _redact_url(value)
            elif f.name in _SECRET_FIELDS:
                value = "***" if value else value
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse settings from `environ` (default `os.environ`), every variable of `VARIABLES`.

        Raises `SettingsError` naming every missing or malformed variable and every broken
        rule between fields, all at once; no message holds a secret's value.
        """
        parser = Parser(os.environ if environ is None else environ)
        settings = cls(**{var.field: parser.read(var) for var in VARIABLES})
        problems = [*parser.problems, *problems_between(settings)]
        if problems:
            raise SettingsError("invalid settings: " + "; ".join(problems))
        return settings
