"""The hub's fan-out with the in-memory broker twin (no I/O)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgpack
import orjson
from prometheus_client import CollectorRegistry

from realtime.broker import MemoryBroker, MemoryBus, Message, OnMessage, OnResync
from realtime.channels import ANONYMOUS, parse_channel
from realtime.hub import CLOSE_INSUFFICIENT_STATE, CLOSE_SLOW, Client, Hub, OutFrame
from realtime.metrics import HubMetrics
from realtime.protocol import Position
from realtime.wire import Codec
from testkit.waiting import eventually


class FakeSink:
    def __init__(self, buffered: int = 0) -> None:
        self.frames: list[OutFrame] = []
        self.pending = buffered
        self.closed: int | None = None

    def write(self, frame: OutFrame) -> None:
        self.frames.append(frame)

    def buffered(self) -> int:
        return self.pending

    def close(self, code: int, reason: str) -> None:
        self.closed = code

    def messages(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for f in self.frames:
            if f.codec is Codec.JSON:
                out += [orjson.loads(line) for line in f.payload.split(b"\n")]
            else:
                unpacker = msgpack.Unpacker(raw=False)
                unpacker.feed(f.payload)
                out += list(unpacker)
        return out

    def publications(self) -> list[dict[str, object]]:
        return [m for m in self.messages() if "channel" in m]


def make_hub(bus: MemoryBus, **kw: object) -> Hub:
    hub = Hub(MemoryBroker(bus), metrics=HubMetrics(CollectorRegistry()), flush_delay_s=0,
              **kw)  # type: ignore[arg-type]
    HUBS.append(hub)
    return hub


HUBS: list[Hub] = []


async def settle() -> None:
    """Let pending deliveries (call_soon) and flushes (call_later) run."""
    for _ in range(1000):
        for _ in range(5):
            await asyncio.sleep(0)
        if all(h.idle() for h in HUBS):
            return
        await asyncio.sleep(0.001)


async def subscribe(hub: Hub, sink: FakeSink, name: str, *, codec: Codec = Codec.JSON,
                    since: Position | None = None) -> Client:
    client = hub.connect(sink, codec, ANONYMOUS)
    channel = parse_channel(name)
    result = await hub.subscribe(client, channel, since)
    hub.release(client, channel, result)
    return client


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


class SteeredBroker(MemoryBroker):
    """The twin, with the timings the hub cannot choose: when a position is read (after
    `before_read` is set), when its reply arrives (after `before_reply` is set; the value was
    read before), and when the bus hands this process a publication (`hold_bus`: queued until
    `flush_bus`, which may lose some). `reads`: the positions read so far."""

    def __init__(self, bus: MemoryBus) -> None:
        super().__init__(bus)
        self.before_read: asyncio.Event | None = None
        self.before_reply: asyncio.Event | None = None
        self.held: list[Message] | None = None
        self.reads = 0

    def attach(self, on_message: OnMessage, on_resync: OnResync) -> None:
        def receive(msg: Message) -> None:
            if self.held is not None:
                self.held.append(msg)
            else:
                on_message(msg)

        super().attach(receive, on_resync)
        self.deliver_now = on_message

    async def position(self, channel: str) -> Position:
        if self.before_read is not None:
            await self.before_read.wait()
        position = await super().position(channel)
        self.reads += 1
        if self.before_reply is not None:
            await self.before_reply.wait()
        return position

    def hold_bus(self) -> None:
        self.held = []

    async def flush_bus(self, *, drop: int = 0) -> None:
        for _ in range(3):
            await asyncio.sleep(0)  # the bus's deliveries (call_soon) reach `receive`
        held, self.held = self.held or [], None
        for msg in held[drop:]:
            self.deliver_now(msg)


def steered_hub(bus: MemoryBus, **kw: Any) -> tuple[Hub, SteeredBroker]:
    broker = SteeredBroker(bus)
    hub = Hub(broker, metrics=HubMetrics(CollectorRegistry()), **kw)
    HUBS.append(hub)
    return hub, broker


async def until(predicate: Callable[[], bool]) -> None:
    await eventually(predicate, 1.0, step=0.001)


async def test_a_publication_received_but_not_yet_swept_is_not_repeated_after_the_reply() -> None:
    # The show-night duplicate: the publication reaches this process while the new
    # subscriber's position read is under way, the read (made after the publish) already
    # counts it, and the channel's next sweep is still waiting out the flush delay.
    bus = MemoryBus()
    hub, broker = steered_hub(bus, flush_delay_s=0.05)
    name = f"show:{uuid.uuid4()}"
    early = FakeSink()
    await subscribe(hub, early, name)
    await hub.publish(name, {"n": 1})
    await settle()  # swept at once (idle channel); the next sweep waits 50 ms
    broker.before_read = asyncio.Event()
    late = FakeSink()
    client = hub.connect(late, Codec.JSON, ANONYMOUS)
    channel = parse_channel(name)
    joining = asyncio.ensure_future(hub.subscribe(client, channel, None))
    await until(lambda: hub.local_count(name) == 2)
    await hub.publish(name, {"n": 2})
    await until(lambda: hub.channels[name].end == 2)  # in the log, not yet written
    broker.before_read.set()
    result = await joining
    assert result.position.offset == 2
    hub.release(client, channel, result)
    await settle()
    await hub.publish(name, {"n": 3})
    await settle()
    assert [p["offset"] for p in early.publications()] == [1, 2, 3]
    assert [p["offset"] for p in late.publications()] == [3]
    assert late.closed is None


async def test_concurrent_first_subscribers_with_different_results_each_follow_on() -> None:
    # A reconnect storm on a process that has no subscriber of the channel yet: one result is
    # read before two publications, another (recovering with `since`) after them, and that one
    # is released first, before the bus has delivered them here. Neither may see a gap or a
    # repeat.
    bus = MemoryBus()
    pub = make_hub(bus)
    name = f"show:{uuid.uuid4()}"
    for i in range(3):
        await pub.publish(name, {"n": i})
    epoch = bus.streams[name].epoch
    hub, broker = steered_hub(bus, flush_delay_s=0)
    broker.before_reply = asyncio.Event()
    slow_sink, fast_sink = FakeSink(), FakeSink()
    slow = hub.connect(slow_sink, Codec.JSON, ANONYMOUS)
    channel = parse_channel(name)
    joining = asyncio.ensure_future(hub.subscribe(slow, channel, None))
    await until(lambda: name in hub.channels and hub.channels[name].reader is not None)
    await until(lambda: broker.reads == 1)  # the slow one's position (offset 3); its reply waits
    broker.hold_bus()
    await pub.publish(name, {"n": 3})
    await pub.publish(name, {"n": 4})
    fast = hub.connect(fast_sink, Codec.JSON, ANONYMOUS)
    result = await hub.subscribe(fast, channel, Position(epoch, 3))
    assert result.position.offset == 5 and result.recovered
    hub.release(fast, channel, result)
    broker.before_reply.set()
    slow_result = await joining
    assert slow_result.position.offset == 3
    hub.release(slow, channel, slow_result)
    await broker.flush_bus()
    await settle()
    await pub.publish(name, {"n": 5})
    await settle()
    assert [p["offset"] for p in slow_sink.publications()] == [4, 5, 6]
    assert [p["offset"] for p in fast_sink.publications()] == [6]


async def test_a_subscriber_ahead_of_the_bus_still_learns_of_a_lost_publication() -> None:
    # The result was read before this process received anything on the channel; the bus then
    # loses the next publication: the subscriber must be told to recover, not skip it.
    bus = MemoryBus()
    pub = make_hub(bus)
    name = f"show:{uuid.uuid4()}"
    await pub.publish(name, {"n": 0})
    hub, broker = steered_hub(bus, flush_delay_s=0)
    sink = FakeSink()
    await subscribe(hub, sink, name)
    broker.hold_bus()
    await pub.publish(name, {"n": 1})
    await pub.publish(name, {"n": 2})
    await broker.flush_bus(drop=1)  # offset 2 lost on pub/sub
    await settle()
    assert sink.publications() == []
    assert sink.closed == CLOSE_INSUFFICIENT_STATE


async def test_resubscribing_after_an_unsubscribe_keeps_nothing_of_the_first_subscription() -> None:
    bus = MemoryBus()
    pub = make_hub(bus)
    name = f"show:{uuid.uuid4()}"
    hub, broker = steered_hub(bus, flush_delay_s=0)
    other = FakeSink()
    await subscribe(hub, other, name)  # keeps the channel on this hub
    sink = FakeSink()
    client = await subscribe(hub, sink, name)
    broker.hold_bus()
    await pub.publish(name, {"n": 1})  # the next result (offset 1) is ahead of the bus here
    channel = parse_channel(name)
    hub.unsubscribe(client, channel)
    result = await hub.subscribe(client, channel, None)
    hub.release(client, channel, result)
    hub.unsubscribe(client, channel)
    await broker.flush_bus()
    await settle()
    await pub.publish(name, {"n": 2})
    await settle()
    result = await hub.subscribe(client, channel, None)
    assert result.position.offset == 2
    hub.release(client, channel, result)
    await pub.publish(name, {"n": 3})
    await settle()
    assert [p["offset"] for p in other.publications()] == [1, 2, 3]
    assert [p["offset"] for p in sink.publications()] == [3]
    assert sink.closed is None
