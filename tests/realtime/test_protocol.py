"""Pure tests of the session state machine, channel rules and wire encoding."""

from __future__ import annotations

import contextlib
import uuid

import msgpack
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import Unauthorized
from realtime import wire
from realtime.channels import (
    ANONYMOUS,
    BadChannel,
    ChannelForbidden,
    Kind,
    Subject,
    can_publish,
    can_subscribe,
    check_publish,
    kind_of,
    needs_parties,
    parse_channel,
)
from realtime.protocol import (
    Auth,
    CommandError,
    Custom,
    Limits,
    Ping,
    Position,
    Publish,
    Session,
    Subscribe,
    TokenBucket,
    Unsubscribe,
    Verdict,
    error_reply,
    parse_command,
)
from realtime.wire import Codec

U = uuid.UUID("8c4c3a9e-3f2e-4a43-9d0c-1b2c3d4e5f60")


def test_channel_names() -> None:
    assert parse_channel(f"auction:{U}").kind is Kind.AUCTION
    assert parse_channel(f"show:{U}").kind is Kind.SHOW
    chat = parse_channel(f"show:{U}:chat")
    assert (chat.kind, chat.id) == (Kind.SHOW_CHAT, U)
    assert parse_channel("admin").kind is Kind.ADMIN
    for bad in ("", "auction", f"auction:{str(U).upper()}", f"order:{U}:chat", f"bid:{U}",
                "auction:1", f"user:{U}:x", None, 5, "x" * 100, f"show:{U}:video"):
        with pytest.raises(BadChannel):
            parse_channel(bad)
    assert kind_of(f"show:{U}:chat") == "show-chat"
    assert kind_of("nonsense") == "other"


@given(st.text(max_size=80))
@settings(max_examples=200)
def test_parse_channel_never_crashes(text: str) -> None:
    try:
        channel = parse_channel(text)
    except BadChannel:
        return
    assert channel.name == text


def test_permissions_for_every_kind() -> None:
    me, other = uuid.uuid4(), uuid.uuid4()
    buyer, admin = Subject(me, "buyer"), Subject(other, "admin")
    for kind in ("auction", "show"):
        assert can_subscribe(ANONYMOUS, parse_channel(f"{kind}:{U}"))
    assert can_subscribe(ANONYMOUS, parse_channel(f"show:{U}:chat"))
    order = parse_channel(f"order:{U}")
    assert not can_subscribe(ANONYMOUS, order)
    assert not can_subscribe(buyer, order)  # parties unknown: refused
    assert not can_subscribe(buyer, order, parties={other})
    assert can_subscribe(buyer, order, parties={me, other})
    assert can_subscribe(admin, order)
    assert needs_parties(order, buyer)
    assert not needs_parties(order, admin)
    assert can_subscribe(buyer, parse_channel(f"user:{me}"))
    assert not can_subscribe(buyer, parse_channel(f"user:{other}"))
    assert not can_subscribe(admin, parse_channel(f"user:{me}"))
    assert can_subscribe(admin, parse_channel("admin"))
    assert not can_subscribe(buyer, parse_channel("admin"))
    assert can_publish(buyer, parse_channel(f"show:{U}:chat"))
    assert not can_publish(ANONYMOUS, parse_channel(f"show:{U}:chat"))
    assert not can_publish(buyer, parse_channel(f"auction:{U}"))
    assert can_publish(admin, parse_channel(f"auction:{U}"))


def test_parse_commands() -> None:
    assert parse_command({"id": 1, "op": "ping"}) == Ping(1)
    assert parse_command({"id": 2, "op": "auth", "token": "t"}) == Auth(2, "t")
    sub = parse_command({"id": 3, "op": "subscribe", "channel": f"show:{U}",
                         "since": {"epoch": "e", "offset": 4}})
    assert isinstance(sub, Subscribe)
    assert sub.since == Position("e", 4)
    assert isinstance(parse_command({"id": 4, "op": "unsubscribe", "channel": "admin"}),
                      Unsubscribe)
    pub = parse_command({"id": 5, "op": "publish", "channel": "admin", "data": None})
    assert isinstance(pub, Publish)
    assert pub.data is None
    bid = parse_command({"id": 6, "op": "bid", "amount": 5}, custom_ops={"bid"})
    assert isinstance(bid, Custom)
    assert bid.frame["amount"] == 5


@pytest.mark.parametrize(("frame", "id_", "code"), [
    ([1], None, "malformed_frame"),
    ({"op": "ping"}, None, "malformed_frame"),
    ({"id": True, "op": "ping"}, None, "malformed_frame"),
    ({"id": -1, "op": "ping"}, None, "malformed_frame"),
    ({"id": 2**60, "op": "ping"}, None, "malformed_frame"),
    ({"id": 1}, 1, "malformed_frame"),
    ({"id": 1, "op": "bid"}, 1, "unknown_op"),
    ({"id": 1, "op": "subscribe", "channel": "nope"}, 1, "bad_channel"),
    ({"id": 1, "op": "subscribe", "channel": "admin", "since": {"epoch": "e"}}, 1,
     "malformed_frame"),
    ({"id": 1, "op": "subscribe", "channel": "admin", "since": {"epoch": "e", "offset": -1}}, 1,
     "malformed_frame"),
    ({"id": 1, "op": "publish", "channel": "admin"}, 1, "malformed_frame"),
    ({"id": 1, "op": "auth", "token": ""}, 1, "malformed_frame"),
    ({"id": 1, "op": "auth", "token": "x" * 9000}, 1, "malformed_frame"),
])
def test_bad_commands(frame: object, id_: int | None, code: str) -> None:
    with pytest.raises(CommandError) as err:
        parse_command(frame)
    assert (err.value.id, err.value.error.code) == (id_, code)
    assert error_reply(err.value.id, err.value.error)["error"]["code"] == code


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c,
                                                                        max_size=4),
                    max_leaves=10))
@settings(max_examples=200)
def test_parse_command_only_raises_command_errors(frame: object) -> None:
    with contextlib.suppress(CommandError):
        parse_command(frame, custom_ops={"bid"})


def test_session_rate_limit_and_flood() -> None:
    session = Session(Limits(max_subscriptions=2, command_rate=1.0, command_burst=3), now=0.0)
    assert [session.admit(0.0) for _ in range(3)] == [Verdict.OK] * 3
    assert session.admit(0.0) is Verdict.LIMITED
    assert session.rate_limited().temporary is True
    assert session.admit(1.5) is Verdict.OK  # refilled one token
    verdicts = [session.admit(1.5) for _ in range(5)]
    assert verdicts[:3] == [Verdict.LIMITED] * 3
    assert verdicts[-1] is Verdict.FLOOD


def test_session_subscriptions_and_auth() -> None:
    session = Session(Limits(max_subscriptions=1), now=0.0)
    session.check_auth()
    a, b = parse_channel(f"show:{U}"), parse_channel(f"auction:{U}")
    session.check_subscribe(a)
    session.add_subscription(a)
    with pytest.raises(Exception, match="already subscribed"):
        session.check_subscribe(a)
    with pytest.raises(Exception, match="At most 1"):
        session.check_subscribe(b)
    with pytest.raises(Exception, match="Authenticate once"):
        session.check_auth()
    with pytest.raises(Exception, match="not subscribed"):
        session.check_unsubscribe(b)
    session.remove_subscription(a)
    session.authenticated(Subject(uuid.uuid4(), "buyer"))
    with pytest.raises(Exception, match="Authenticate once"):
        session.check_auth()


def test_token_bucket_refills_with_time() -> None:
    bucket = TokenBucket(capacity=2, rate=2, tokens=2, stamp=10.0)
    assert bucket.take(10.0)
    assert bucket.take(10.0)
    assert not bucket.take(10.0)
    assert bucket.wait_s() == pytest.approx(0.5)
    assert bucket.take(10.5)
    assert not bucket.take(9.0)  # time going backwards adds nothing


def test_wire_frames_and_codecs() -> None:
    assert wire.pick_codec([]) is Codec.JSON
    assert wire.pick_codec(["x", "souk.v1.msgpack"]) is Codec.MSGPACK
    assert wire.pick_codec(["x"]) is None
    pub = wire.publication_json(f"show:{U}", 7, b'{"a":1}')
    assert orjson.loads(pub) == {"channel": f"show:{U}", "offset": 7, "data": {"a": 1}}
    assert msgpack.unpackb(wire.json_to_msgpack(pub)) == orjson.loads(pub)
    assert "offset" not in orjson.loads(wire.publication_json("admin", None, b"2"))
    for n in (0, 125, 126, 65535, 65536):
        head = wire.frame_header(0x1, n)
        assert head[0] == 0x81
        assert len(head) == (2 if n < 126 else 4 if n < 65536 else 10)
    reply = wire.subscribe_reply(Codec.JSON, 3, {"epoch": "e", "offset": 7, "recovered": True},
                                 [pub])
    assert orjson.loads(reply)["result"]["publications"] == [orjson.loads(pub)]
    mp = wire.subscribe_reply(Codec.MSGPACK, 3, {"epoch": "e", "offset": 7, "recovered": True},
                              [pub])
    assert msgpack.unpackb(mp)["result"]["publications"] == [orjson.loads(pub)]
    with pytest.raises(wire.FrameError):
        wire.decode(Codec.JSON, b"{}")
    with pytest.raises(wire.FrameError):
        wire.decode(Codec.MSGPACK, "{}")
    with pytest.raises(wire.FrameError):
        wire.decode(Codec.MSGPACK, b"\xc1")
    with pytest.raises(wire.FrameError):
        wire.decode(Codec.JSON, "{")
    assert wire.decode(Codec.MSGPACK, msgpack.packb({"id": 1})) == {"id": 1}
    close = wire.close_frame(4008, "slow")
    assert close[0] == 0x88
    assert close[2:4] == b"\x0f\xa8"


def test_check_publish_refuses_with_the_error_the_client_needs() -> None:
    chat = parse_channel(f"show:{uuid.uuid4()}:chat")
    bids = parse_channel(f"auction:{uuid.uuid4()}")
    buyer, admin = Subject(uuid.uuid4(), "buyer"), Subject(uuid.uuid4(), "admin")
    check_publish(buyer, chat)
    check_publish(admin, bids)  # admins may publish anywhere
    with pytest.raises(Unauthorized):
        check_publish(ANONYMOUS, chat)
    with pytest.raises(ChannelForbidden):
        check_publish(buyer, bids)
