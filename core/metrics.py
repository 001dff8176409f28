"""Prometheus metrics with an injected registry (never the process-global one).

Labels are low-cardinality by rule: route templates, methods, status classes, channel kinds —
never ids. Each package builds its own collectors with `registry=metrics.registry`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The process's registry and the metrics `core` itself owns."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "souk_http_requests_total",
            "HTTP requests served, by route template, method and status class.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "souk_http_request_duration_seconds",
            "HTTP request handling time, by route template and method.",
            ("route", "method"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.http_in_flight = Gauge(
            "souk_http_requests_in_flight", "HTTP requests being handled.", registry=self.registry
        )
        self.rate_limited = Counter(
            "souk_rate_limited_total",
            "Requests refused by a rate limiter, by limiter name.",
            ("limiter",),
            registry=self.registry,
        )
        self.rate_limiter_errors = Counter(
            "souk_rate_limiter_errors_total",
            "Rate-limiter checks that failed open because Redis did not answer.",
            ("limiter",),
            registry=self.registry,
        )
        self.outbox_published = Counter(
            "souk_outbox_published_total",
            "Outbox events handed to the publisher.",
            registry=self.registry,
        )
        self.outbox_failures = Counter(
            "souk_outbox_failures_total",
            "Outbox publish attempts that failed (retried later).",
            registry=self.registry,
        )
        self.outbox_lag = Histogram(
            "souk_outbox_lag_seconds",
            "Time from an outbox row's commit to its publication.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The registry in Prometheus text exposition format."""
        return generate_latest(self.registry)


def status_class(status: int) -> str:
    return f"{status // 100}xx"
