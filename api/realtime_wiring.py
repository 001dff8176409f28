"""Builds the real-time hub for a process and connects it to the rest of the system: token
verification and revocations, the outbox relay, presence, shows' chat rules, the drain on
SIGTERM (composition root only; `api.app` adds the orders' parties and the `bid`/`location`
ops)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from api.shows.chat import ChatPolicy
from core.auth import Principal
from core.context import Runtime, is_revoked, revoked_among
from core.errors import TokenInvalid
from core.outbox import OutboxRelay
from core.tasks import stop
from realtime.channels import Kind
from realtime.endpoint import Gateway
from realtime.hub import Hub
from realtime.metrics import HubMetrics
from realtime.outbox import outbox_publisher
from realtime.presence import RedisPresence
from realtime.protocol import Limits
from realtime.redis_broker import RedisBroker
from realtime.revocation import CHANNEL as REVOCATIONS_CHANNEL
from realtime.revocation import Revocations

log = logging.getLogger("souk.realtime")


@contextlib.contextmanager
def drain_on_sigterm(hub: Hub, within_s: float) -> Any:
    """Chain the server's SIGTERM handler: first close every websocket client with 4000
    (reconnect elsewhere) spread over `within_s` and wait for them to go, then hand over to the
    server's own shutdown (which would otherwise close them with 1012). Only when the server
    installed a handler (uvicorn does) and we are on the main thread."""
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous) or threading.current_thread() is not threading.main_thread():
        yield
        return
    chained: Callable[[int, FrameType | None], Any] = previous
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def drain_then_exit(signum: int, frame: FrameType | None) -> None:
        log.info("draining websocket clients", extra={"clients": len(hub.clients)})
        try:
            await hub.drain(within_s)
            await hub.wait_empty(max(1.0, within_s))
        finally:
            chained(signum, frame)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if hub.draining:
            chained(signum, frame)  # a second SIGTERM: stop waiting
            return
        task = loop.create_task(drain_then_exit(signum, frame))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass(frozen=True)
class Realtime:
    hub: Hub
    gateway: Gateway
    broker: RedisBroker
    presence: RedisPresence
    revocations: Revocations


def _build(rt: Runtime, relay: OutboxRelay, metrics: HubMetrics) -> Realtime:
    """The real-time pieces of a process, connected (nothing started yet)."""
    s = rt.settings
    broker = RedisBroker(
        rt.redis, s.redis_url, prefix=s.redis_prefix, metrics=metrics,
        history_size=s.realtime_history_size, history_ttl_s=s.realtime_history_ttl_s,
        meta_ttl_s=s.realtime_meta_ttl_s, sharded=s.realtime_sharded_pubsub,
    )
    hub = Hub(
        broker, metrics=metrics, outbox_max_bytes=s.ws_outbox_max_bytes,
        flush_delay_s=s.ws_flush_delay_ms / 1000, recover_max=s.realtime_recover_max,
        max_connections=s.ws_max_connections, slice_size=s.ws_sweep_slice,
        slice_s=s.ws_sweep_slice_ms / 1000,
    )

    async def verify(token: str) -> Principal:
        principal = rt.tokens.verify(token)
        if await is_revoked(rt, principal):
            raise TokenInvalid("The token was revoked (logout or suspended account).")
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
    revocations = Revocations(hub, lambda principals: revoked_among(rt, principals),
                              recheck_s=s.ws_revocation_recheck_s,
                              on_notice=rt.verdicts.forget_user)
    gateway.guard = revocations
    gateway.origins = frozenset(o.rstrip("/").lower() for o in s.ws_origins)
    relay.add_handler(outbox_publisher(hub))
    return Realtime(hub, gateway, broker, presence, revocations)


@contextlib.asynccontextmanager
async def open_realtime(
    rt: Runtime, relay: OutboxRelay, metrics: HubMetrics
) -> AsyncIterator[Realtime]:
    """The process's real-time pieces, running: the broker, the revocation checks and the
    presence task; on exit the hub drains its clients and everything closes."""
    s = rt.settings
    built = _build(rt, relay, metrics)
    hub, broker, presence, revocations = (built.hub, built.broker, built.presence,
                                          built.revocations)
    await broker.start()
    await revocations.start()
    # Revocation verdicts are cached only while this subscription is live (core/authcache.py).
    rt.verdicts.subscribed(lambda: broker.subscription(REVOCATIONS_CHANNEL))
    presence_task = asyncio.create_task(presence.run(), name="realtime-presence")
    try:
        with drain_on_sigterm(hub, s.ws_drain_s):
            yield built
    finally:
        rt.verdicts.unsubscribed()
        await revocations.close()
        await hub.drain(s.ws_drain_s)
        presence.stop()
        await stop(presence_task, finish_within_s=5)
        await presence.close()
        await broker.close()
