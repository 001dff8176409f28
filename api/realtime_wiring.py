"""Builds the real-time hub for a process and connects it to the rest of the system: token
verification, the outbox relay, order parties, shows' chat rules (composition root only)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from api.shows.chat import ChatPolicy
from core.auth import Principal
from core.context import Runtime, is_revoked
from core.errors import TokenInvalid
from core.outbox import OutboxRelay
from realtime.channels import Kind
from realtime.endpoint import Gateway
from realtime.hub import Hub
from realtime.metrics import HubMetrics
from realtime.outbox import outbox_publisher
from realtime.presence import RedisPresence
from realtime.protocol import Limits
from realtime.redis_broker import RedisBroker


@dataclass(frozen=True)
class Realtime:
    hub: Hub
    gateway: Gateway
    broker: RedisBroker
    presence: RedisPresence


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

    presence = RedisPresence(rt.redis, hub, prefix=s.redis_prefix,
                             ttl_s=s.realtime_presence_ttl_s)
    chat = ChatPolicy(rt.pool, rt.limiter, max_chars=s.chat_max_chars, rate=s.chat_rate,
                      window_s=s.chat_rate_window_s)
    gateway = Gateway(
        hub=hub, verify=verify, metrics=metrics,
        limits=Limits(s.ws_max_subscriptions, float(s.ws_command_rate), s.ws_command_burst),
        max_frame_bytes=s.ws_max_frame_bytes,
        subscribe_policies={Kind.SHOW_CHAT: chat.can_subscribe},
        publish_policies={Kind.SHOW_CHAT: chat.publish},
        presence=presence,
    )
    relay.add_handler(outbox_publisher(hub))
    await broker.start()
    presence_task = asyncio.create_task(presence.run(), name="realtime-presence")
    try:
        yield Realtime(hub, gateway, broker, presence)
    finally:
        await hub.drain(s.ws_drain_s)
        presence_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await presence_task
        await presence.close()
        await broker.close()
