"""The hub's Prometheus collectors, on the process's injected registry. Labels are channel
kinds (`auction`, `show`, ...) or reasons, never ids."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                 0.5, 1.0)


class HubMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.connections = Gauge("souk_ws_connections", "Open websocket connections.", registry=r)
        self.sinks = Counter(
            "souk_ws_sinks_total",
            "Websocket connections by write path: transport (uvicorn fast path) or asgi.",
            ["path"], registry=r,
        )
        self.connects = Counter(
            "souk_ws_connects_total", "Websocket connection attempts, by outcome.", ("outcome",),
            registry=r,
        )
        self.disconnects = Counter(
            "souk_ws_disconnects_total", "Server-initiated closes, by code.", ("code",), registry=r
        )
        self.subscriptions = Gauge(
            "souk_ws_subscriptions", "Local subscriptions, by channel kind.", ("kind",), registry=r
        )
        self.channels = Gauge(
            "souk_ws_channels", "Channels this process is subscribed to on the bus.", registry=r
        )
        self.publications_in = Counter(
            "souk_ws_publications_in_total",
            "Publications received from the bus, by channel kind.", ("kind",), registry=r,
        )
        self.publications_out = Counter(
            "souk_ws_publications_out_total",
            "Publications written to clients, by channel kind.", ("kind",), registry=r,
        )
        self.published = Counter(
            "souk_ws_published_total", "Publications made by this process, by channel kind.",
            ("kind",), registry=r,
        )
        self.bytes_out = Counter(
            "souk_ws_bytes_out_total", "Bytes written to websocket clients.", registry=r
        )
        self.writes = Counter(
            "souk_ws_writes_total", "Frames written to websocket clients.", registry=r
        )
        self.outbox_drops = Counter(
            "souk_ws_outbox_drops_total",
            "Queued latest-value publications replaced by a newer one.", ("kind",), registry=r,
        )
        self.slow_disconnects = Counter(
            "souk_ws_slow_disconnects_total", "Clients closed with 4008 for falling behind.",
            registry=r,
        )
        self.resyncs = Counter(
            "souk_ws_resyncs_total",
            "Channels whose subscribers were told to recover (gap or new epoch), by kind.",
            ("kind",), registry=r,
        )
        self.recoveries = Counter(
            "souk_ws_recover_total", "Subscribe with since, by result.", ("recovered",), registry=r
        )
        self.fanout_duration = Histogram(
            "souk_ws_fanout_duration_seconds",
            "Time of one sweep over a channel's local subscribers, start to last write.",
            buckets=_FAST_BUCKETS, registry=r,
        )
        self.pubsub_lag = Histogram(
            "souk_ws_pubsub_lag_seconds", "Publish to receipt from the bus (wall clocks).",
            buckets=_FAST_BUCKETS, registry=r,
        )
        self.commands = Counter(
            "souk_ws_commands_total", "Client commands, by op and outcome.", ("op", "outcome"),
            registry=r,
        )
        self.bus_reconnects = Counter(
            "souk_ws_bus_reconnects_total", "Pub/sub connection re-established.", registry=r
        )
