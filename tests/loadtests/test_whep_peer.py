"""The WHEP helper's fence on aiortc/aioice internals (fails loudly on an upgrade that moves
them) and its packet counter."""

from __future__ import annotations

import inspect

import aioice.ice
from aiortc import RTCPeerConnection
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from loadtests.crowd import whep_peer


def test_the_internals_relied_on_are_there() -> None:
    for owner, name in whep_peer.RELIED_ON:
        assert hasattr(owner, name), f"{owner!r} has no {name}: see loadtests/crowd/whep_peer.py"
    assert list(inspect.signature(aioice.ice.get_host_addresses).parameters) == [
        "use_ipv4", "use_ipv6"]
    params = list(inspect.signature(RTCRtpReceiver._handle_rtp_packet).parameters)
    assert params == ["self", "packet", "arrival_time_ms"]
    assert inspect.iscoroutinefunction(RTCRtpReceiver._handle_rtp_packet)


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
