"""Builds the real-time hub for a process and connects it to the rest of the system: token
verification, the outbox relay, order parties, shows' chat rules (composition root only)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from core.auth import Principal
from core.context import Runtime, is_revoked
from core.errors import TokenInvalid
from core.outbox import OutboxRelay
from realtime.endpoint import Gateway
from realtime.hub import Hub
from realtime.metrics import HubMetrics
from realtime.outbox import outbox_publisher
from realtime.protocol import Limits
from realtime.redis_broker import RedisBroker


@dataclass(frozen=True)
class Realtime:
    hub: Hub
    gateway: Gateway
    broker: RedisBroker


@contextlib.asynccontextmanager
async def open_realtime(
    rt: Runtime, relay: OutboxRelay, metrics: HubMetrics
) -> AsyncIterator[Realtime]:
    s = rt.settings
    broker = RedisBroker(
        rt.redis, s.redis_url, prefix=s.redis_prefix, metrics=metrics,
        history_size=s.realtime_history_size, history_ttl_s=s.realtime_history_ttl_s,
        meta_ttl_s=s.realtime_meta_ttl_s, sharded=s.realtime_sharded_pubsub,
    )
    hub = Hub(
        broker, metrics=metrics, outbox_max_bytes=s.ws_outbox_max_bytes,
        flush_delay_s=s.ws_flush_delay_ms / 1000, recover_max=s.realtime_recover_max,
        max_connections=s.ws_max_connections,
    )

    async def verify(token: str) -> Principal:
        principal = rt.tokens.verify(token)
        if await is_revoked(rt, principal.jti):
            raise TokenInvalid("The token was revoked by logout.")
        return principal

    gateway = Gateway(
        hub=hub, verify=verify, metrics=metrics,
        limits=Limits(s.ws_max_subscriptions, float(s.ws_command_rate), s.ws_command_burst),
        max_frame_bytes=s.ws_max_frame_bytes,
    )
    relay.add_handler(outbox_publisher(hub))
    await broker.start()
    try:
        yield Realtime(hub, gateway, broker)
    finally:
        await hub.drain(s.ws_drain_s)
        await broker.close()
