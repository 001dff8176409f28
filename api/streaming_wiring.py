"""Builds the live-video service of a process and connects it to shows (their records, state
changes and `show:{id}` publications). Composition root only: streaming never imports api."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from api.shows import store
from api.shows.rules import ShowState
from core.auth import Principal
from core.context import Runtime
from core.db import transaction
from core.errors import NotFound
from core.outbox import add_event
from core.tasks import stop
from realtime.hub import Hub
from streaming.aiortc_hooks import use_host_addresses
from streaming.metrics import StreamingMetrics
from streaming.ownership import Ownership
from streaming.records import ShowHooks, StreamConfig
from streaming.service import StreamingService
from streaming.session import NotTheSeller, ShowEnded


def config_from(rt: Runtime) -> StreamConfig:
    s = rt.settings
    return StreamConfig(
        grace_s=s.show_publisher_grace_s,
        max_viewers_per_show=s.streaming_max_viewers_per_show,
        max_viewers=s.streaming_max_viewers,
        max_publishers=s.streaming_max_publishers,
        max_sdp_bytes=s.streaming_max_sdp_bytes,
        connect_timeout_s=s.streaming_connect_timeout_s,
        media_timeout_s=s.streaming_media_timeout_s,
        keyframe_interval_s=s.streaming_keyframe_interval_ms / 1000,
        viewer_queue=s.streaming_viewer_queue,
        max_pending_handshakes=s.streaming_max_pending_handshakes,
        lease_s=s.streaming_lease_s,
        public_url=s.streaming_public_url,
    )


def show_hooks(rt: Runtime, hub: Hub) -> ShowHooks:
    async def authorize_publisher(show_id: uuid.UUID, principal: Principal) -> None:
        show = await store.get(rt.pool, show_id)
        if show is None:
            raise NotFound("No such show.")
        if show.seller_id != principal.user_id:
            raise NotTheSeller()
        if show.state is ShowState.ENDED:
            raise ShowEnded()

    async def show_exists(show_id: uuid.UUID) -> bool:
        return await store.get(rt.pool, show_id) is not None

    async def move(show_id: uuid.UUID, source: ShowState, target: ShowState) -> None:
        async with transaction(rt.pool) as conn:
            show = await store.get(conn, show_id, for_update=True)
            if show is None or show.state is not source:
                return
            await store.set_state(conn, show_id, target, source)
            await add_event(conn, f"show.{target.value}",
                            {"type": "state", "show_id": str(show_id), "state": target.value},
                            channels=[f"show:{show_id}"])

    async def went_live(show_id: uuid.UUID) -> None:
        await move(show_id, ShowState.SCHEDULED, ShowState.LIVE)

    async def ended(show_id: uuid.UUID) -> None:
        await move(show_id, ShowState.LIVE, ShowState.ENDED)

    async def ended_among(show_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        return await store.ended_among(rt.pool, show_ids)

    async def announce(show_id: uuid.UUID, data: dict[str, Any]) -> None:
        await hub.publish(f"show:{show_id}", data, key="video")

    return ShowHooks(authorize_publisher, show_exists, went_live, ended, ended_among, announce)


@contextlib.asynccontextmanager
async def open_streaming(rt: Runtime, hub: Hub, metrics: StreamingMetrics) -> AsyncIterator[
        StreamingService]:
    """The process's StreamingService with its timer task; closes every peer connection and
    releases the show leases on exit."""
    use_host_addresses(rt.settings.webrtc_host_addresses)
    service = StreamingService(
        config_from(rt), show_hooks(rt, hub),
        Ownership(rt.redis, prefix=rt.settings.redis_prefix, lease_s=rt.settings.streaming_lease_s),
        metrics,
    )
    task = asyncio.create_task(service.run(), name="streaming-timers")
    try:
        yield service
    finally:
        service.stop()
        await stop(task, finish_within_s=5)
        await service.close()
