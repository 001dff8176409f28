"""The WHEP helper's packet counter and loopback gathering (the aiortc internals behind them are
checked with the others in tests/streaming/test_aiortc_hooks.py)."""

from __future__ import annotations

import aioice.ice
from aiortc import RTCPeerConnection

from loadtests.crowd import whep_peer


async def test_a_receiver_counts_instead_of_decoding() -> None:
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        counter = whep_peer.Counter()
        whep_peer.count_packets(receiver, counter)

        class Packet:
            payload = b"x" * 100

        await receiver._handle_rtp_packet(Packet(), arrival_time_ms=0)
        await receiver._handle_rtp_packet(Packet(), arrival_time_ms=1)
        assert (counter.packets, counter.bytes) == (2, 200)
    finally:
        await pc.close()


def test_counter_windows() -> None:
    c = whep_peer.Counter()
    for t in (1.0, 1.02, 1.2, 1.21):
        c.add(10, t)
    assert c.first == 1.0
    assert c.window() == {"packets": 4, "bytes": 40, "max_gap_ms": 180.0}
    assert c.window() == {"packets": 0, "bytes": 0, "max_gap_ms": 0.0}


def test_loopback_gathering_is_this_process_only() -> None:
    original = aioice.ice.get_host_addresses
    try:
        whep_peer.use_loopback()
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
    finally:
        aioice.ice.get_host_addresses = original
