"""Publishes committed outbox events on their real-time channels (register with
`OutboxRelay.add_handler`). Delivery is at least once: a retried event is published again
with a new offset, so payloads should carry their own id for clients to de-duplicate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from core.outbox import OutboxEvent
from realtime.channels import BadChannel, parse_channel
from realtime.hub import Hub


def outbox_publisher(hub: Hub) -> Callable[[OutboxEvent], Awaitable[None]]:
    async def handle(event: OutboxEvent) -> None:
        for name in event.channels:
            try:
                parse_channel(name)
            except BadChannel:
                continue  # not a real-time channel name: nothing to publish
            await hub.publish(name, event.payload)

    return handle
