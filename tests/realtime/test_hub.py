"""The hub's fan-out with the in-memory broker twin (no I/O)."""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
from prometheus_client import CollectorRegistry

from realtime.broker import MemoryBroker, MemoryBus
from realtime.channels import ANONYMOUS, parse_channel
from realtime.hub import CLOSE_INSUFFICIENT_STATE, CLOSE_SLOW, Hub, OutFrame
from realtime.metrics import HubMetrics
from realtime.protocol import Position
from realtime.wire import Codec
from tests.realtime.hubkit import HUBS, FakeSink, make_hub, settle, subscribe


async def test_publication_reaches_other_hub_encoded_once_and_batched() -> None:
    bus = MemoryBus()
    a, b = make_hub(bus), make_hub(bus)
    name = f"auction:{uuid.uuid4()}"
    sinks = [FakeSink() for _ in range(3)]
    for s in sinks:
        await subscribe(b, s, name)
    mp = FakeSink()
    await subscribe(b, mp, name, codec=Codec.MSGPACK)
    for i in range(5):
        assert await a.publish(name, {"n": i}) == Position(bus.streams[name].epoch, i + 1)
    await settle()
    for s in (*sinks, mp):
        pubs = s.publications()
        assert [p["offset"] for p in pubs] == [1, 2, 3, 4, 5]
        assert [p["data"] for p in pubs] == [{"n": i} for i in range(5)]
        assert len(s.frames) == 1  # five publications, one write
    assert sinks[0].frames[0] is sinks[1].frames[0] is sinks[2].frames[0]  # encoded once
    assert mp.frames[0].codec is Codec.MSGPACK


async def test_bus_subscription_follows_local_subscribers() -> None:
    bus = MemoryBus()
    hub = make_hub(bus)
    broker = hub.broker
    assert isinstance(broker, MemoryBroker)
    name = f"show:{uuid.uuid4()}"
    c1 = await subscribe(hub, FakeSink(), name)
    c2 = await subscribe(hub, FakeSink(), name)
    assert broker.channels == {name}
    assert hub.local_count(name) == 2
    hub.unsubscribe(c1, parse_channel(name))
    await settle()
    assert broker.channels == {name}
    hub.disconnect(c2)
    await settle()
    assert broker.channels == set()
    assert name not in hub.channels


async def test_slow_client_closed_with_4008_others_unaffected() -> None:
    bus = MemoryBus()
    hub = make_hub(bus, outbox_max_bytes=4096, high_water=1024)
    name = f"auction:{uuid.uuid4()}"
    slow_sink, fast_sink = FakeSink(buffered=2048), FakeSink()
    slow = await subscribe(hub, slow_sink, name)
    await subscribe(hub, fast_sink, name)
    for i in range(40):
        await hub.publish(name, {"n": i, "pad": "x" * 100})
        await settle()
    assert slow_sink.closed == CLOSE_SLOW
    assert slow.closed
    assert [p["offset"] for p in fast_sink.publications()] == list(range(1, 41))
    assert fast_sink.closed is None


async def test_latest_value_publications_keep_only_the_newest_while_blocked() -> None:
    bus = MemoryBus()
    hub = make_hub(bus, high_water=1024)
    name = f"show:{uuid.uuid4()}"
    sink = FakeSink(buffered=5000)
    client = await subscribe(hub, sink, name)
    await hub.publish(name, {"type": "state", "state": "live"})
    for n in range(10):
        await hub.publish(name, {"type": "viewers", "count": n}, key="viewers")
    await settle()
    assert sink.frames == []  # the transport is full: everything waits in the outbox
    sink.pending = 0
    assert client.drain() is False
    pubs = sink.publications()
    assert [p["data"] for p in pubs] == [{"type": "state", "state": "live"},
                                        {"type": "viewers", "count": 9}]
    assert "offset" not in pubs[1]


async def test_recovery_and_release_without_duplicates() -> None:
    bus = MemoryBus()
    hub = make_hub(bus, recover_max=5)
    name = f"auction:{uuid.uuid4()}"
    for i in range(8):
        await hub.publish(name, {"n": i})
    epoch = bus.streams[name].epoch
    client = hub.connect(FakeSink(), Codec.JSON, ANONYMOUS)
    result = await hub.subscribe(client, parse_channel(name), Position(epoch, 5))
    assert result.recovered
    assert result.position == Position(epoch, 8)
    assert [orjson.loads(p)["offset"] for p in result.publications] == [6, 7, 8]
    too_far = await hub.subscribe(hub.connect(FakeSink(), Codec.JSON, ANONYMOUS),
                                  parse_channel(name), Position(epoch, 1))
    assert not too_far.recovered
    assert too_far.publications == []
    other = await hub.subscribe(hub.connect(FakeSink(), Codec.JSON, ANONYMOUS),
                                parse_channel(name), Position("old", 8))
    assert not other.recovered


async def test_publications_held_during_subscribe_follow_the_reply() -> None:
    bus = MemoryBus()
    hub = make_hub(bus)
    name = f"auction:{uuid.uuid4()}"
    await subscribe(hub, FakeSink(), name)  # keeps the channel active on this hub
    sink = FakeSink()
    client = hub.connect(sink, Codec.JSON, ANONYMOUS)
    channel = parse_channel(name)
    result = await hub.subscribe(client, channel, None)
    await hub.publish(name, {"n": 1})
    await settle()
    assert sink.frames == []  # held until the reply went out
    client.send(b'{"id":1,"result":{}}')
    hub.release(client, channel, result)
    assert [m.get("offset") for m in sink.messages()] == [None, 1]


async def test_lost_state_makes_subscribers_recover() -> None:
    bus = MemoryBus()
    hub = make_hub(bus)
    name = f"auction:{uuid.uuid4()}"
    sink = FakeSink()
    await subscribe(hub, sink, name)
    await hub.publish(name, {"n": 1})
    await settle()
    bus.flush()  # Redis restarted: new epoch, offsets start again
    await hub.publish(name, {"n": 2})
    await settle()
    assert sink.closed == CLOSE_INSUFFICIENT_STATE


async def test_reply_ahead_of_the_bus_is_not_followed_by_duplicates() -> None:
    bus = MemoryBus()
    hub = make_hub(bus)
    name = f"auction:{uuid.uuid4()}"
    early = FakeSink()
    await subscribe(hub, early, name)
    await hub.publish(name, {"n": 1})  # delivery to this hub is still pending
    late = FakeSink()
    client = hub.connect(late, Codec.JSON, ANONYMOUS)
    channel = parse_channel(name)
    result = await hub.subscribe(client, channel, Position(bus.streams[name].epoch, 0))
    assert [orjson.loads(p)["offset"] for p in result.publications] == [1]
    hub.release(client, channel, result)
    await settle()
    await hub.publish(name, {"n": 2})
    await settle()
    assert [p["offset"] for p in early.publications()] == [1, 2]
    assert [p["offset"] for p in late.publications()] == [2]


async def test_sliced_sweeps_keep_every_subscriber_in_order_while_publications_arrive() -> None:
    bus = MemoryBus()
    pub, hub = make_hub(bus), make_hub(bus, slice_size=2)
    name = f"auction:{uuid.uuid4()}"
    sinks = [FakeSink() for _ in range(7)]
    for s in sinks:
        await subscribe(hub, s, name)
    mp = FakeSink()
    await subscribe(hub, mp, name, codec=Codec.MSGPACK)
    leaver = FakeSink()
    leaver_client = await subscribe(hub, leaver, name)
    for i in range(30):
        await pub.publish(name, {"n": i})  # sweeps of two connections run in between
        if i == 10:
            hub.unsubscribe(leaver_client, parse_channel(name))
            late = FakeSink()
            await subscribe(hub, late, name)
    await settle()
    for s in (*sinks, mp):
        assert [p["offset"] for p in s.publications()] == list(range(1, 31))
        assert [p["data"] for p in s.publications()] == [{"n": i} for i in range(30)]
    late_offsets = [p["offset"] for p in late.publications()]
    assert late_offsets == list(range(late_offsets[0], 31))  # gapless from where it joined
    leaver_offsets = [p["offset"] for p in leaver.publications()]
    assert leaver_offsets == list(range(1, len(leaver_offsets) + 1))
    assert len(leaver_offsets) <= 11
    assert hub.idle()
    assert all(not ch.log for ch in hub.channels.values())  # everything written was forgotten


async def test_sweeps_of_a_busy_channel_are_spaced_and_batched() -> None:
    bus = MemoryBus()
    pub = make_hub(bus)
    hub = Hub(MemoryBroker(bus), metrics=HubMetrics(CollectorRegistry()), flush_delay_s=0.3)
    HUBS.append(hub)
    name = f"auction:{uuid.uuid4()}"
    sink = FakeSink()
    await subscribe(hub, sink, name)
    await pub.publish(name, {"n": 0})
    await settle()
    assert len(sink.frames) == 1  # an idle channel writes at once
    for i in range(1, 6):
        await pub.publish(name, {"n": i})
    await settle()
    assert [p["offset"] for p in sink.publications()] == list(range(1, 7))
    assert len(sink.frames) == 2  # the next five waited for the interval and left together


async def test_a_sweep_that_shared_the_loop_backs_off_by_the_time_spent_elsewhere() -> None:
    """While a sweep runs, other callbacks take the loop for ~20 ms between its slices: the
    next sweep waits about as long as the loop spent elsewhere after it ends (fan-out yields to
    a busy loop), never longer than the sweep's own cost or `max_backoff_s`; on an idle loop
    sweeps follow at once."""
    loop = asyncio.get_running_loop()

    def busy() -> None:  # other work of the loop
        time.sleep(0.02)

    class BusySink(FakeSink):
        written_at = 0.0

        def write(self, frame: OutFrame) -> None:
            super().write(frame)
            time.sleep(0.015)  # the write's own cost (the backoff is at most the sweep's own)
            BusySink.written_at = time.perf_counter()
            loop.call_soon(busy)  # runs before the sweep's next slice

    bus = MemoryBus()
    pub = make_hub(bus)
    hub = make_hub(bus, slice_size=1, max_backoff_s=0.5)
    name = f"auction:{uuid.uuid4()}"
    sinks = [BusySink() for _ in range(3)]
    for s in sinks:
        await subscribe(hub, s, name)
    await pub.publish(name, {"n": 0})
    await settle()
    ch = hub.channels[name]
    # two busy turns ran between the three slices: the next sweep waits ~40 ms after the last
    assert 0.035 <= ch.next_sweep_at - BusySink.written_at <= 0.5
    await pub.publish(name, {"n": 1})
    for _ in range(5):
        await asyncio.sleep(0)
    assert all(len(s.frames) == 1 for s in sinks)  # not yet: backing off
    await settle()
    assert all([p["offset"] for p in s.publications()] == [1, 2] for s in sinks)

    quiet = make_hub(bus, slice_size=1)
    sink = FakeSink()
    await subscribe(quiet, sink, name)
    await pub.publish(name, {"n": 2})
    await settle()
    assert quiet.channels[name].next_sweep_at - time.perf_counter() < 0.01


async def test_a_slice_also_ends_when_its_time_is_up() -> None:
    """Big frames write slowly: a slice stops after `slice_s` of writing even below
    `slice_size` connections, so other work runs between slices."""
    class SlowSink(FakeSink):
        def write(self, frame: OutFrame) -> None:
            super().write(frame)
            time.sleep(0.001)

    loop = asyncio.get_running_loop()
    partial: list[int] = []
    sinks = [SlowSink() for _ in range(40)]

    def probe() -> None:
        written = sum(len(s.frames) for s in sinks)
        if 0 < written < len(sinks):
            partial.append(written)
        if written < len(sinks):
            loop.call_soon(probe)

    bus = MemoryBus()
    pub, hub = make_hub(bus), make_hub(bus, slice_size=1000, slice_s=0.005)
    name = f"auction:{uuid.uuid4()}"
    for s in sinks:
        await subscribe(hub, s, name)
    loop.call_soon(probe)
    await pub.publish(name, {"n": 0})
    await settle()
    assert all(len(s.frames) == 1 for s in sinks)
    assert partial and partial[0] == 16  # the time is checked every 16 connections
