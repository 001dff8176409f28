"""The one use of aiortc internals in the load generator: taking RTP before the receivers.

A counting viewer replaces, on its own ``RTCDtlsTransport`` instance, the coroutine
``_handle_rtp_data(data, arrival_time_ms)`` that ``_recv_next`` awaits with each decrypted RTP
packet (after real ICE, DTLS and SRTP). The receivers then never see a packet: no jitter buffer,
no decode, no per-receiver thread work. tests/loadtests/test_streaming_viewers.py fails loudly if
an aiortc upgrade renames or moves what this relies on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiortc.rtcdtlstransport import RTCDtlsTransport

RELIED_ON = ("_handle_rtp_data", "_recv_next", "_rx_srtp")

Handler = Callable[[bytes, int], Awaitable[None]]


def tap_rtp(transport: Any, handler: Handler) -> None:
    """Send every decrypted RTP packet arriving on ``transport`` to ``handler`` instead."""
    if not isinstance(transport, RTCDtlsTransport):
        raise TypeError(f"not an RTCDtlsTransport: {type(transport)!r}")
    transport._handle_rtp_data = handler
