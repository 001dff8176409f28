"""The Redis broker: atomic offsets, bounded history, pub/sub fan-in with reconnects.

Keys and Lua scripts per channel: redis_scripts.py. One script increments the offset, appends
to the stream and publishes, so offsets are gapless and pub/sub order is offset order. When the
meta hash is gone (Redis restarted or was flushed, or the channel idled past its TTL) the next
publish or subscribe creates a new epoch and deletes stale history: clients holding the old
epoch get `recovered: false`, never a gap.

Pub/sub message: `<epoch> <offset> <ms> <key>\\n<JSON publication>` (epoch and offset `-` for
latest-value publications, key empty for durable ones).

Each process reads pub/sub on one connection (`PubSubLink`, redis_link.py, to REDIS_URL); with
sharded pub/sub on a Redis Cluster, on one per node serving its channels' slots. A reader never
dies silently: on any error it logs, counts, reconnects with backoff, resubscribes its channels
and asks the hub to check positions (whatever was published meanwhile was missed). On a
cluster, channels follow their slots: when a node drops a shard subscription (its slot
migrated), answers MOVED, or stays unreachable, the slot map is read again and each channel
subscribed on the node now serving it, then positions are checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis

from core.redis_client import REDIS_ERRORS, is_cluster
from core.tasks import stop
from realtime import redis_scripts, wire
from realtime.broker import Message, OnMessage, OnResync, Ordered, Recovery, new_epoch
from realtime.metrics import HubMetrics
from realtime.protocol import Position
from realtime.redis_link import PubSubLink

log = logging.getLogger("souk.realtime.redis")

SUBSCRIBE_TIMEOUT_S = 5.0


class RedisBroker:
    def __init__(
        self,
        redis: aioredis.Redis,
        url: str,
        *,
        prefix: str,
        metrics: HubMetrics,
        history_size: int = 300,
        history_ttl_s: int = 300,
        meta_ttl_s: int = 86_400,
        sharded: bool = False,
        max_concurrency: int = 32,
    ) -> None:
        self._redis = redis
        self._url = url
        self._prefix = prefix
        self._metrics = metrics
        self._history_size = history_size
        self._history_ttl_ms = history_ttl_s * 1000
        self._meta_ttl_s = max(meta_ttl_s, history_ttl_s)
        self._sharded = sharded
        self._position = redis.register_script(redis_scripts.POSITION)
        self._publish = redis.register_script(redis_scripts.PUBLISH)
        self._recover = redis.register_script(redis_scripts.RECOVER)
        self._on_message: OnMessage | None = None
        self._on_resync: OnResync | None = None
        self._confirm: dict[str, asyncio.Future[None]] = {}
        # Pub/sub connections by URL: one (REDIS_URL) for classic pub/sub or a single node;
        # on a Redis Cluster with sharded pub/sub, one per node holding the slots of the
        # channels subscribed (`_link_for`). `_home`: which link holds each channel.
        self._links: dict[str, PubSubLink] = {}
        self._home: dict[str, PubSubLink] = {}
        self._per_node = sharded and is_cluster(redis)
        self._rehoming: asyncio.Task[None] | None = None
        self._rehome_again = False
        self._closing = False
        self._sub_prefix = f"{prefix}{{rt:"
        # Reconnect storms start thousands of subscribes at once: queue them here instead of
        # exhausting the Redis connection pool (which fails rather than waits).
        self._gate = asyncio.Semaphore(max_concurrency)

    # -- names ---------------------------------------------------------------------------

    def _tag(self, channel: str) -> str:
        return f"{self._prefix}{{rt:{channel}}}"

    def _keys(self, channel: str) -> list[str]:
        tag = self._tag(channel)
        return [tag + ":meta", tag + ":stream"]

    def _channel_of(self, bus_name: bytes) -> str | None:
        name = bus_name.decode()
        if not (name.startswith(self._sub_prefix) and name.endswith("}")):
            return None
        return name[len(self._sub_prefix) : -1]

    # -- lifecycle -----------------------------------------------------------------------

    def attach(self, on_message: OnMessage, on_resync: OnResync) -> None:
        self._on_message, self._on_resync = on_message, on_resync

    async def start(self) -> None:
        link = self._link(self._url)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                await link.connected.wait()

    async def close(self) -> None:
        """Stop the readers. The flag backs up the cancellation, which a Redis client call may
        swallow (the loop would then reconnect forever)."""
        self._closing = True
        tasks = [link.task for link in self._links.values()]
        if self._rehoming is not None:
            tasks.append(self._rehoming)
        await stop(*tasks)

    def _link(self, url: str) -> PubSubLink:
        link = self._links.get(url)
        if link is None:
            link = self._links[url] = PubSubLink(self, url)
        return link

    def _link_for(self, channel: str) -> PubSubLink:
        """The pub/sub connection that must hold `channel`: REDIS_URL's, or with sharded pub/sub
        on a Redis Cluster the one to the node serving the channel's slot."""
        if not self._per_node:
            return self._link(self._url)
        try:
            node = self._redis.get_node_from_key(self._tag(channel))  # type: ignore[attr-defined]
        except REDIS_ERRORS:  # the slot map is not read yet, or the slot is not served:
            self.rehome_soon()  # REDIS_URL's node answers MOVED if it is not the one
            return self._link(self._url)
        return self._link(_with_host(self._url, node.host, node.port))

    # -- commands ------------------------------------------------------------------------

    async def publish(self, channel: str, data_json: bytes, *, key: str | None = None) -> (
        Position | None
    ):
        if key is not None:
            ts = int(time.time() * 1000)
            head = f"- - {ts} {key}\n".encode()
            msg = head + wire.publication_json(channel, None, data_json)
            if self._sharded:
                await self._redis.spublish(self._tag(channel), msg)
            else:
                await self._redis.publish(self._tag(channel), msg)
            return None
        return (await self.publish_many(channel, [data_json]))[0]

    async def publish_many(self, channel: str, data_json: list[bytes]) -> list[Position]:
        """Publish several durable publications on one channel in one Redis call: their
        offsets are consecutive, in list order, and nothing else on the channel interleaves."""
        if not data_json:
            return []
        return (await self._publish_ordered(channel, 0, data_json)).positions

    async def publish_ordered(self, channel: str, order: int, data_json: list[bytes], *,
                              after_gap: bool = False) -> Ordered:
        if order <= 0:
            raise ValueError("order numbers start at 1")
        return await self._publish_ordered(channel, -order if after_gap else order, data_json)

    async def _publish_ordered(self, channel: str, order: int,
                               data_json: list[bytes]) -> Ordered:
        async with self._gate:
            epoch, last, status, last_order = await self._publish(
                keys=self._keys(channel),
                args=[self._tag(channel), channel, new_epoch(), self._history_size,
                      self._history_ttl_ms, self._meta_ttl_s, "1" if self._sharded else "0",
                      order, *data_json],
            )
        if int(status) != 0:
            return Ordered("duplicate" if int(status) == 1 else "gap", [], int(last_order))
        e, n = epoch.decode(), int(last)
        first = n - len(data_json) + 1
        return Ordered("published", [Position(e, first + i) for i in range(len(data_json))],
                       abs(order))

    async def position(self, channel: str) -> Position:
        async with self._gate:
            epoch, offset = await self._position(
                keys=self._keys(channel), args=[new_epoch(), self._meta_ttl_s]
            )
        return Position(epoch.decode(), int(offset))

    async def recover(self, channel: str, since: Position, *, limit: int) -> Recovery:
        async with self._gate:
            out = await self._recover(
                keys=self._keys(channel),
                args=[new_epoch(), self._meta_ttl_s, since.epoch, since.offset, limit,
                      self._history_ttl_ms],
            )
        position = Position(out[0].decode(), int(out[1]))
        if int(out[2]) != 1:
            return Recovery(position, None)
        return Recovery(position, [bytes(p) for p in out[3:]])

    async def subscribe(self, channel: str) -> None:
        """Returns once Redis confirmed the subscription (raises TimeoutError after 5 s)."""
        link = self._home.get(channel) or self._link_for(channel)
        self._home[channel] = link
        link.wanted.add(channel)
        loop = asyncio.get_running_loop()
        fut = self._confirm.get(channel)
        if fut is None or fut.done():
            fut = self._confirm[channel] = loop.create_future()
        if link.pubsub is not None and link.connected.is_set():
            with contextlib.suppress(*REDIS_ERRORS):
                await link.send_subscribe([channel])
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                await asyncio.shield(fut)
        finally:
            if self._confirm.get(channel) is fut and fut.done():
                del self._confirm[channel]

    def subscription(self, channel: str) -> object | None:
        """The live subscription holding `channel` (an identity that changes whenever the
        pub/sub connection is replaced), or None while it is not confirmed on a connected
        link: whatever is published meanwhile may be missed."""
        link = self._home.get(channel)
        if link is None or link.pubsub is None or not link.connected.is_set():
            return None
        return link.pubsub if channel in link.confirmed else None

    async def unsubscribe(self, channel: str) -> None:
        link = self._home.pop(channel, None)
        if link is not None:
            await link.drop(channel)

    def _confirmed(self, bus_name: bytes) -> None:
        channel = self._channel_of(bus_name)
        fut = self._confirm.get(channel) if channel is not None else None
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _resync(self) -> None:
        if self._on_resync is not None:
            self._on_resync()

    # -- sharded pub/sub on a Redis Cluster: channels follow their slots --------------------

    def rehome_soon(self) -> None:
        """A link was told a slot moved, or lost its node: re-read the cluster's slot map and
        move each channel to the link of the node now serving it (once at a time)."""
        if not self._per_node or self._closing:
            return
        self._rehome_again = True  # a pass already running goes round once more
        if self._rehoming is None or self._rehoming.done():
            self._rehoming = asyncio.create_task(self._rehome(), name="realtime-bus-rehome")

    async def _rehome(self) -> None:
        backoff = 0.05
        while not self._closing and self._rehome_again:
            self._rehome_again = False
            try:
                await self._redis.nodes_manager.initialize()  # type: ignore[attr-defined]
                moved = 0
                for channel, link in list(self._home.items()):
                    target = self._link_for(channel)
                    if target is not link:
                        # its old node dropped it, refuses it (MOVED) or is gone: no unsubscribe
                        link.wanted.discard(channel)
                        self._home[channel] = target
                        target.wanted.add(channel)
                        if target.pubsub is not None and target.connected.is_set():
                            await target.send_subscribe([channel])
                        moved += 1
                if moved:
                    self._metrics.bus_reconnects.inc()
                    log.warning("pub/sub channels moved to their slots' new nodes",
                                extra={"moved": moved})
                    self._resync()  # whatever was published meanwhile was missed
            except REDIS_ERRORS as exc:
                self._rehome_again = True
                log.warning("pub/sub slot map refresh failed", extra={"error": repr(exc)})
            if self._rehome_again:  # asked again meanwhile (or failed): not in a tight loop
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)

    def _handle(self, bus_name: bytes, data: bytes) -> None:
        channel = self._channel_of(bus_name)
        if channel is None or self._on_message is None:
            return
        head, sep, payload = data.partition(b"\n")
        if not sep:
            return
        parts = head.split(b" ")
        if len(parts) != 4:
            return
        epoch, offset, ts, key = parts
        if epoch == b"-":
            msg = Message(channel, None, None, int(ts), key.decode() or None, payload)
        else:
            msg = Message(channel, epoch.decode(), int(offset), int(ts), None, payload)
        self._on_message(msg)


def _with_host(url: str, host: str, port: int) -> str:
    """`url` (scheme, credentials, database) pointed at another node."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # an IPv6 address
    return urlunsplit(parts._replace(netloc=(auth + "@" if auth else "") + where))
