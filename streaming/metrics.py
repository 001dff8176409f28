"""Prometheus metrics of the live-video relay (labels: media kind, reason, outcome — no ids)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_TTFF_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class StreamingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.publishers = Gauge("souk_stream_publishers",
                                "WHIP publisher sessions in this process.", registry=r)
        self.viewers = Gauge("souk_stream_viewers",
                             "WHEP viewer sessions in this process.", registry=r)
        self.shows = Gauge("souk_stream_shows",
                           "Shows whose relay lives in this process (live or reconnecting).",
                           registry=r)
        self.pending_handshakes = Gauge(
            "souk_stream_pending_handshakes",
            "Viewer joins admitted but not yet connected (answer, ICE, DTLS) in this process.",
            registry=r)
        self.sessions = Counter("souk_stream_sessions_total",
                                "WHIP/WHEP session requests, by role and outcome (accepted; "
                                "busy: a WHEP refused by STREAMING_MAX_PENDING_HANDSHAKES).",
                                ("role", "outcome"), registry=r)
        self.session_ends = Counter("souk_stream_session_ends_total",
                                    "Sessions closed, by role and reason.", ("role", "reason"),
                                    registry=r)
        self.frames_in = Counter("souk_stream_frames_in_total",
                                 "Encoded frames received from publishers.", ("kind",),
                                 registry=r)
        self.frames_out = Counter("souk_stream_frames_out_total",
                                  "Encoded frames handed to viewers' senders.", ("kind",),
                                  registry=r)
        self.packets_in = Counter("souk_stream_packets_in_total",
                                  "RTP packets received from publishers (estimated from frame "
                                  "sizes, ~1,200-byte payloads).", ("kind",), registry=r)
        self.packets_out = Counter("souk_stream_packets_out_total",
                                   "RTP packets sent to viewers (estimated from frame sizes).",
                                   ("kind",), registry=r)
        self.bytes_in = Counter("souk_stream_bytes_in_total",
                                "Encoded media bytes received from publishers.", ("kind",),
                                registry=r)
        self.bytes_out = Counter("souk_stream_bytes_out_total",
                                 "Encoded media bytes handed to viewers' senders.", ("kind",),
                                 registry=r)
        self.keyframes_in = Counter("souk_stream_keyframes_in_total",
                                    "Video keyframes received from publishers.", registry=r)
        self.keyframe_requests = Counter(
            "souk_stream_keyframe_requests_total",
            "Keyframe requests, by reason (join, viewer, overflow, gop_too_long) and outcome "
            "(sent upstream, or coalesced by the throttle).", ("reason", "outcome"), registry=r)
        self.dropped_to_keyframe = Counter(
            "souk_stream_dropped_to_keyframe_total",
            "Times a viewer's queue overflowed and was emptied to wait for the next keyframe.",
            registry=r)
        self.time_to_first_frame = Histogram(
            "souk_stream_time_to_first_frame_seconds",
            "From a WHEP request's arrival to the first video frame handed to its sender.",
            buckets=_TTFF_BUCKETS, registry=r)
        self.redirects = Counter("souk_stream_redirects_total",
                                 "WHEP requests redirected (307) to the show's owner process.",
                                 registry=r)
