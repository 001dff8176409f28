"""Pure signalling rules: offers, codec choice, presence, routing, limits, keyframe throttle."""

from __future__ import annotations

import pytest

from streaming.frames import ParameterSets, is_keyframe, nal_types
from streaming.session import (
    HANDSHAKE_RETRY_S,
    BadSdp,
    Codec,
    HandshakesBusy,
    KeyframeThrottle,
    NoCommonCodec,
    OfferPlan,
    Phase,
    Presence,
    Route,
    TooManySessions,
    UnsupportedOffer,
    check_capacity,
    check_handshakes,
    content_type_ok,
    plan_offer,
    route_viewer,
    same_codecs,
)

VP8 = Codec("video", "vp8", 90000)
H264 = Codec("video", "h264", 90000, "42e01f")
OPUS = Codec("audio", "opus", 48000)


def sdp(*sections: str, session_ice: bool = False) -> str:
    head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    if session_ice:
        head += "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef0123456789\r\n"
    return head + "".join(sections)


def video(direction: str = "sendonly", codecs: str = "vp8", ice: bool = True,
          mux: bool = True) -> str:
    lines = {"vp8": ("96", "a=rtpmap:96 VP8/90000\r\n"),
             "h264": ("102", "a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;"
                             "packetization-mode=1;profile-level-id=42e01f\r\n"),
             "h264high": ("104", "a=rtpmap:104 H264/90000\r\na=fmtp:104 "
                                 "packetization-mode=1;profile-level-id=640c1f\r\n"),
             "av1": ("45", "a=rtpmap:45 AV1/90000\r\n")}
    names = codecs.split(",")
    pts = " ".join(lines[n][0] for n in names)
    out = f"m=video 9 UDP/TLS/RTP/SAVPF {pts}\r\nc=IN IP4 0.0.0.0\r\n"
    out += "".join(lines[n][1] for n in names)
    if ice:
        out += "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef0123456789\r\n"
    if mux:
        out += "a=rtcp-mux\r\n"
    return out + f"a={direction}\r\n"


def audio(direction: str = "sendonly", codec: str = "opus") -> str:
    rtp = {"opus": "a=rtpmap:111 opus/48000/2\r\n", "pcmu": "a=rtpmap:111 PCMU/8000\r\n"}[codec]
    return (f"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n{rtp}a=ice-ufrag:abcd\r\n"
            f"a=ice-pwd:0123456789abcdef0123456789\r\na=rtcp-mux\r\na={direction}\r\n")


def whip(text: str) -> object:
    return plan_offer(text, role="whip", max_bytes=32768)


def test_publisher_codec_is_its_first_usable_one() -> None:
    assert whip(sdp(video(codecs="vp8,h264"), audio())) == OfferPlan(VP8, OPUS)
    plan = plan_offer(sdp(video(codecs="av1,h264high,h264,vp8")), role="whip", max_bytes=32768)
    assert (plan.video, plan.audio) == (H264, None)


def test_session_level_ice_credentials_count() -> None:
    assert plan_offer(sdp(video(ice=False), session_ice=True), role="whip",
                      max_bytes=32768).video == VP8


@pytest.mark.parametrize(("offer", "error", "words"), [
    ("hello", BadSdp, "v=0"),
    (sdp(), BadSdp, "no media"),
    (sdp(video(ice=False)), BadSdp, "ICE"),
    (sdp("garbage line\r\n"), BadSdp, "type=value"),
    (sdp(audio()), UnsupportedOffer, "no video"),
    (sdp(video(), video()), UnsupportedOffer, "more than one video"),
    (sdp(video(), "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"), UnsupportedOffer,
     "application"),
    (sdp(video(direction="recvonly")), UnsupportedOffer, "WHIP needs"),
    (sdp(video(mux=False)), UnsupportedOffer, "rtcp-mux"),
    (sdp(video(codecs="av1,h264high")), NoCommonCodec, "vp8, h264"),
    (sdp(video(), audio(codec="pcmu")), NoCommonCodec, "opus"),
    (sdp(video()) + "a=x:" + "y" * 40000 + "\r\n", UnsupportedOffer, "larger"),
])
def test_offers_refused_with_reasons(offer: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as caught:
        whip(offer)
    assert words in caught.value.message  # type: ignore[attr-defined]
    assert caught.value.status in (400, 422)  # type: ignore[attr-defined]


def test_viewer_must_offer_the_publishers_codec() -> None:
    shown = {"video": H264, "audio": OPUS}
    plan = plan_offer(sdp(audio("recvonly"), video("recvonly", "vp8,h264")), role="whep",
                      max_bytes=32768, publisher=shown)
    assert (plan.video, plan.audio) == (H264, OPUS)
    with pytest.raises(NoCommonCodec, match="h264 42e01f"):
        plan_offer(sdp(video("recvonly", "vp8")), role="whep", max_bytes=32768, publisher=shown)
    video_only = plan_offer(sdp(video("sendrecv"), audio("recvonly")), role="whep",
                            max_bytes=32768, publisher={"video": VP8})
    assert (video_only.video, video_only.audio) == (VP8, None)
    with pytest.raises(UnsupportedOffer, match="WHEP needs"):
        plan_offer(sdp(video("sendonly")), role="whep", max_bytes=32768, publisher=shown)


def test_reconnect_must_keep_codecs() -> None:
    plan = plan_offer(sdp(video(codecs="h264"), audio()), role="whip", max_bytes=32768)
    assert same_codecs({"video": H264, "audio": OPUS}, plan) is None
    assert same_codecs({"video": VP8}, plan) == VP8


def test_content_type() -> None:
    assert content_type_ok("application/sdp; charset=utf-8", "application/sdp")
    assert not content_type_ok("application/json", "application/sdp")
    assert not content_type_ok(None, "application/sdp")


def test_presence_grace() -> None:
    p = Presence()
    assert not p.end_due(100.0, 30)
    p.publisher_gone(100.0)
    assert p.phase is Phase.RECONNECTING
    assert not p.end_due(129.9, 30)
    p.publisher_connected()  # a reconnect inside the grace resumes
    assert p.phase is Phase.LIVE and not p.end_due(200.0, 30)
    p.publisher_gone(200.0)
    p.publisher_gone(210.0)  # the first departure counts
    assert p.end_due(230.0, 30)
    p.end()
    p.publisher_connected()
    assert p.phase is Phase.ENDED


def test_viewer_routing() -> None:
    me = "http://a:1"
    assert route_viewer(local=True, owner_url="http://b:2", my_url=me) is Route.LOCAL
    assert route_viewer(local=False, owner_url="http://b:2", my_url=me) is Route.REDIRECT
    assert route_viewer(local=False, owner_url="http://a:1/", my_url=me) is Route.NOT_LIVE
    assert route_viewer(local=False, owner_url=None, my_url=me) is Route.NOT_LIVE


def test_capacity() -> None:
    check_capacity(show_viewers=1, process_viewers=1, per_show=2, per_process=2)
    for show, proc in ((2, 2), (0, 2)):
        with pytest.raises(TooManySessions) as caught:
            check_capacity(show_viewers=show, process_viewers=proc, per_show=2, per_process=2)
        assert caught.value.status == 503 and "Retry-After" in caught.value.headers


def test_viewer_handshakes_are_capped_with_a_spread_retry_after() -> None:
    for pending in (0, 3):
        check_handshakes(pending=pending, limit=4, spread=0.5)  # admitted: no error
    retries = set()
    for spread in (0.0, 0.34, 0.67, 0.999, 1.0, -1.0):
        with pytest.raises(HandshakesBusy) as caught:
            check_handshakes(pending=4, limit=4, spread=spread)
        error = caught.value
        assert error.status == 503 and error.code == "viewer_joins_busy"
        retry = int(error.headers["Retry-After"])
        assert HANDSHAKE_RETRY_S[0] <= retry <= HANDSHAKE_RETRY_S[1]
        retries.add(retry)
    assert retries == set(range(HANDSHAKE_RETRY_S[0], HANDSHAKE_RETRY_S[1] + 1))
    with pytest.raises(HandshakesBusy):
        check_handshakes(pending=9, limit=4, spread=0.1)  # over the cap (a lowered setting)


def test_keyframe_throttle_coalesces_without_losing() -> None:
    t = KeyframeThrottle(0.5)
    assert t.request(10.0)
    assert not t.request(10.1) and not t.request(10.2)
    assert t.wait_s(10.2) == pytest.approx(0.3)
    assert not t.due(10.4)
    assert t.due(10.5)
    assert not t.due(10.6)  # sent once for both requests
    assert t.request(11.1)


def test_keyframes() -> None:
    assert is_keyframe("vp8", b"\x10\x02") and not is_keyframe("vp8", b"\x11\x02")
    assert not is_keyframe("vp8", b"")
    idr = b"\x00\x00\x00\x01\x67sps\x00\x00\x00\x01\x68pps\x00\x00\x01\x65idr"
    assert nal_types(idr) == [7, 8, 5] and is_keyframe("h264", idr)
    assert not is_keyframe("h264", b"\x00\x00\x00\x01\x41slice")
    assert is_keyframe("opus", b"\x01")


def test_parameter_sets_are_put_back_in_front_of_a_bare_idr() -> None:
    params = ParameterSets()
    first = b"\x00\x00\x00\x01\x67SPS\x00\x00\x00\x01\x68PPS\x00\x00\x00\x01\x65IDR"
    assert params.complete(first) == first
    bare = b"\x00\x00\x00\x01\x65IDR2"
    assert params.complete(bare) == b"\x00\x00\x00\x01\x67SPS\x00\x00\x00\x01\x68PPS" + bare
    delta = b"\x00\x00\x00\x01\x41P"
    assert params.complete(delta) == delta
