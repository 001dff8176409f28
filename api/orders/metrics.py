"""Commerce metrics, registered on the process's injected registry. Labels never carry ids."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.requests import Request

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CommerceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.checkouts = Counter(
            "souk_checkouts_total", "Checkout attempts by outcome (ok or the error code).",
            ("outcome",), registry=registry,
        )
        self.transitions = Counter(
            "souk_order_transitions_total", "Order state changes by target state and kind.",
            ("to", "kind"), registry=registry,
        )
        self.job_runs = Counter(
            "souk_commerce_job_runs_total", "Background job passes by job and outcome.",
            ("job", "outcome"), registry=registry,
        )
        self.job_items = Counter(
            "souk_commerce_job_items_total",
            "Orders handled by background jobs (expired reservations, settlements) by outcome.",
            ("job", "outcome"), registry=registry,
        )
        self.job_seconds = Histogram(
            "souk_commerce_job_seconds", "Duration of one background job pass.", ("job",),
            buckets=_BUCKETS, registry=registry,
        )


def commerce_metrics(request: Request) -> CommerceMetrics:
    """The app's commerce metrics (`app.state.commerce_metrics`, set by `api.app.create_app`)."""
    metrics: CommerceMetrics = request.app.state.commerce_metrics
    return metrics
