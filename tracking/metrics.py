"""Prometheus metrics of tracking and dispatch (injected registry; no ids in labels)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_PUBLISH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class TrackingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.fixes = Counter(
            "souk_tracking_fixes_total",
            "Position fixes received, by transport (ws, osmand) and result (accepted or the "
            "reason it was dropped).",
            ("transport", "result"), registry=registry,
        )
        self.refused = Counter(
            "souk_tracking_requests_refused_total",
            "Ingest requests refused before any fix was judged, by reason (unknown_device, "
            "malformed, forbidden).",
            ("reason",), registry=registry,
        )
        self.online = Gauge(
            "souk_tracking_riders_online",
            "Riders whose last fix is younger than TRACKING_OFFLINE_S.", registry=registry,
        )
        self.history_rows = Counter(
            "souk_tracking_history_rows_total",
            "Accepted fixes written to the position history.", registry=registry,
        )
        self.history_batches = Counter(
            "souk_tracking_history_batches_total",
            "Batches written to the position history (one COPY each).", registry=registry,
        )
        self.history_failures = Counter(
            "souk_tracking_history_failures_total",
            "History batches that failed (kept and retried).", registry=registry,
        )
        self.history_lost = Counter(
            "souk_tracking_history_lost_total",
            "Fixes dropped from the history because its buffer was full (database down).",
            registry=registry,
        )
        self.published = Counter(
            "souk_tracking_positions_published_total",
            "rider.position publications on order channels.", registry=registry,
        )
        self.publish_latency = Histogram(
            "souk_tracking_ingest_to_publish_seconds",
            "From a fix's arrival to its rider.position publication being handed to the bus.",
            buckets=_PUBLISH_BUCKETS, registry=registry,
        )
        self.geofence = Counter(
            "souk_tracking_geofence_events_total", "Geofence events, by kind.", ("kind",),
            registry=registry,
        )
        self.offers = Counter(
            "souk_dispatch_offers_total", "Dispatch offers made.", registry=registry,
        )
        self.accepts = Counter(
            "souk_dispatch_accepts_total",
            "Offer accepts, by outcome (won, offer_taken, offer_expired).", ("outcome",),
            registry=registry,
        )
        self.expiries = Counter(
            "souk_dispatch_offers_expired_total", "Offers that expired unanswered.",
            registry=registry,
        )
        self.rounds = Counter(
            "souk_dispatch_rounds_total",
            "Dispatch rounds, by outcome (offered, no_rider, failed).", ("outcome",),
            registry=registry,
        )
