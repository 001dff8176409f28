"""The hub when the broker's timings go against it: positions read and replies arriving
while publications are in flight or lost (a steered in-memory broker, no I/O)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from realtime.broker import MemoryBroker, MemoryBus, Message, OnMessage, OnResync
from realtime.channels import ANONYMOUS, parse_channel
from realtime.hub import CLOSE_INSUFFICIENT_STATE, Hub
from realtime.metrics import HubMetrics
from realtime.protocol import Position
from realtime.wire import Codec
from testkit.waiting import eventually
from tests.realtime.hubkit import HUBS, FakeSink, make_hub, settle, subscribe


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
