"""One pub/sub connection of the Redis broker (redis_broker.py) and the channels it should hold.

Its reader never dies silently: on any error it logs, counts, reconnects with backoff,
resubscribes its channels and asks the hub to check positions (whatever was published meanwhile
was missed). After three failures in a row, or when the server drops or refuses a shard
subscription (its slot moved), it asks the broker to re-read the cluster's slot map.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from core.redis_client import REDIS_ERRORS
from realtime.redis_pubsub import RawPubSub

if TYPE_CHECKING:
    from realtime.redis_broker import RedisBroker

log = logging.getLogger("souk.realtime.redis")


class PubSubLink:
    """One pub/sub connection and the channels it should hold. Its reader never dies silently:
    on any error it logs, counts, reconnects with backoff, resubscribes its channels and asks
    the hub to check positions (whatever was published meanwhile was missed)."""

    def __init__(self, broker: RedisBroker, url: str) -> None:
        self.broker = broker
        self.url = url
        self.wanted: set[str] = set()
        self.confirmed: set[str] = set()  # subscriptions Redis confirmed on this connection
        self.pubsub: RawPubSub | None = None
        self.connected = asyncio.Event()
        self.task = asyncio.create_task(self._read_forever(), name="realtime-bus-reader")

    async def send_subscribe(self, channels: list[str]) -> None:
        b = self.broker
        cmd = "SSUBSCRIBE" if b._sharded else "SUBSCRIBE"
        for i in range(0, len(channels), 500):
            names = [b._tag(c) for c in channels[i : i + 500]]
            if b._sharded:
                for name in names:  # sharded: one slot per command
                    await self._live().send(cmd, name)
            else:
                await self._live().send(cmd, *names)

    def _live(self) -> RawPubSub:
        if self.pubsub is None:
            raise RedisConnectionError("pub/sub is not connected")
        return self.pubsub

    async def drop(self, channel: str) -> None:
        self.wanted.discard(channel)
        self.confirmed.discard(channel)
        if self.pubsub is not None and self.connected.is_set():
            cmd = "SUNSUBSCRIBE" if self.broker._sharded else "UNSUBSCRIBE"
            with contextlib.suppress(*REDIS_ERRORS):
                await self.pubsub.send(cmd, self.broker._tag(channel))

    async def _read_forever(self) -> None:
        b = self.broker
        backoff = 0.05
        first = True
        failures = 0
        while not b._closing:
            client = aioredis.Redis.from_url(
                self.url, retry=Retry(NoBackoff(), 0), health_check_interval=0,
                socket_keepalive=True, socket_connect_timeout=5,
            )
            self.confirmed = set()
            try:
                self.pubsub = RawPubSub(client)
                await self.pubsub.connect()
                # Subscribing to nothing real keeps the connection in pub/sub mode.
                await self.pubsub.send("SUBSCRIBE", b._tag("_"))
                if self.wanted:
                    await self.send_subscribe(sorted(self.wanted))
                self.connected.set()
                if not first:
                    b._metrics.bus_reconnects.inc()
                    log.warning("pub/sub reconnected")
                    b._resync()
                first = False
                backoff = 0.05
                failures = 0
                await self._pump()
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                failures += 1
                log.warning("pub/sub connection lost", extra={"error": repr(exc)})
            except Exception:  # never die silently: log and start over
                failures += 1
                log.exception("pub/sub reader failed")
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await self._live().aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()
                self.pubsub = None
            if failures >= 3:  # its node may be gone for good: its slots moved elsewhere
                b.rehome_soon()
            first = False
            await asyncio.sleep(backoff)
            backoff = min(2.0, backoff * 2)

    async def _pump(self) -> None:
        b = self.broker
        ps = self._live()
        while not b._closing:
            try:
                response = await ps.read()
            except ResponseError as exc:  # a refused (S)SUBSCRIBE: MOVED, its slot moved
                log.warning("pub/sub command refused", extra={"error": repr(exc)})
                b.rehome_soon()
                continue
            if response is None:
                continue
            kind = response[0]
            if kind in (b"message", b"smessage"):
                b._handle(response[1], response[2])
            elif kind in (b"subscribe", b"ssubscribe"):
                channel = b._channel_of(response[1])
                if channel is not None:
                    self.confirmed.add(channel)
                b._confirmed(response[1])
            elif kind == b"sunsubscribe":
                channel = b._channel_of(response[1])
                if channel is not None:
                    self.confirmed.discard(channel)
                if channel is not None and channel in self.wanted:
                    b.rehome_soon()  # dropped by the server, not by us: its slot moved
