"""Show chat rules plugged into the hub: who may read and write `show:{id}:chat`."""

from __future__ import annotations

import time
from typing import Any

import asyncpg

from api.shows import store
from api.shows.errors import Banned, Muted, ShowNotLive
from api.shows.rules import ShowState, chat_message
from core.errors import NotFound, RateLimited
from core.ratelimit import RateLimiter
from realtime.channels import Channel, Subject


class ChatPolicy:
    def __init__(self, pool: asyncpg.Pool, limiter: RateLimiter, *, max_chars: int, rate: int,
                 window_s: int) -> None:
        self._pool = pool
        self._limiter = limiter
        self._max_chars = max_chars
        self._rate = rate
        self._window_s = window_s

    async def can_subscribe(self, who: Subject, channel: Channel) -> None:
        """Banned users may not read the chat. Raises NotFound for unknown shows."""
        assert channel.id is not None
        if await store.get(self._pool, channel.id) is None:
            raise NotFound("No such show.")
        if (who.user_id is not None
                and await store.restriction(self._pool, channel.id, who.user_id) == "ban"):
            raise Banned()

    async def publish(self, who: Subject, channel: Channel, data: Any) -> dict[str, Any]:
        """Check and stamp one chat message. Raises Muted, Banned, ShowNotLive, RateLimited,
        ValidationFailed."""
        assert channel.id is not None
        assert who.user_id is not None
        message = chat_message(data, user_id=who.user_id, max_chars=self._max_chars,
                               now_ms=int(time.time() * 1000))
        show = await store.get(self._pool, channel.id)
        if show is None:
            raise NotFound("No such show.")
        if show.state is ShowState.ENDED:
            raise ShowNotLive()
        kind = await store.restriction(self._pool, channel.id, who.user_id)
        if kind == "mute":
            raise Muted()
        if kind == "ban":
            raise Banned()
        decision = await self._limiter.take("chat", str(who.user_id), capacity=self._rate,
                                            window_s=self._window_s)
        if not decision.allowed:
            raise RateLimited(decision.retry_after_s, "Too many chat messages.")
        return message
