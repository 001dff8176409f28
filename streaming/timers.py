"""The timers of one process's live-video service: connection and media timeouts, the end of
a publisher's grace, lease renewal, and the sweeps for shows whose process died or that were
ended through the API (every SWEEP_S). The service they run for is `service.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from streaming.records import ShowRelay
from streaming.session import Phase

if TYPE_CHECKING:
    from streaming.service import StreamingService

log = logging.getLogger("souk.streaming")
TICK_S = 0.25
SWEEP_S = 2.0  # how often a process looks for shows whose owner died or that were ended


class ShowTimers:
    def __init__(self, service: StreamingService) -> None:
        self.service = service
        self._stop = asyncio.Event()

    async def tick(self) -> None:
        """One pass of the timers: connection and media timeouts, grace expiry."""
        s = self.service
        now = time.monotonic()
        c = s.config
        for session in list(s.sessions.values()):
            if not session.connected and now - session.created > c.connect_timeout_s:
                await s.close_session(session, "connect_timeout")
        for relay in list(s.shows.values()):
            pub = relay.publisher
            if pub is not None and pub.connected and now - relay.last_media > c.media_timeout_s:
                await s.close_session(pub, "media_timeout")
            if relay.publisher is None and relay.presence.phase is Phase.LIVE:
                relay.presence.publisher_gone(now)  # accepted but never connected
            if relay.presence.end_due(now, c.grace_s):
                await self.end_show(relay)
            else:
                await s.announce(relay)

    async def run(self) -> None:
        """Timers, lease renewal and the orphan sweep until `stop()`. (Not stopped by
        cancellation alone: a library that swallows one CancelledError would leave the loop
        running; cancel it only after `stop()` if it does not return.)"""
        renew_every = max(TICK_S, self.service.config.lease_s / 3)
        last_renew = last_sweep = 0.0
        while not self._stop.is_set():
            try:
                await self.tick()
                now = time.monotonic()
                if now - last_sweep >= SWEEP_S:
                    last_sweep = now
                    await self._end_orphans()
                    await self._end_ended()
                if now - last_renew >= renew_every:
                    last_renew = now
                    await self._renew()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("streaming timers failed; retrying")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK_S):
                    await self._stop.wait()

    def stop(self) -> None:
        self._stop.set()

    async def end_show(self, relay: ShowRelay) -> None:
        s = self.service
        relay.presence.end()
        if relay.live_announced:
            await s.announce(relay)
        s.shows.pop(relay.show_id, None)
        sessions = list(relay.viewers) + ([relay.publisher] if relay.publisher else [])
        await asyncio.gather(*(s.close_session(x, "show_ended") for x in sessions))
        for fanout in relay.fanouts.values():
            fanout.close()
        with contextlib.suppress(Exception):
            await s.ownership.release(relay.show_id, relay.base_url)
        if relay.live_announced:
            await s.hooks.ended(relay.show_id)
            await s.ownership.unmark(relay.show_id)
        s.update_gauges()
        log.info("show ended", extra={"show_id": str(relay.show_id)})

    async def _renew(self) -> None:
        s = self.service
        held = [(r.show_id, r.base_url) for r in s.shows.values()]
        for show_id in await s.ownership.renew(held):
            relay = s.shows.get(show_id)
            if relay and await s.ownership.acquire(show_id, relay.base_url):
                log.warning("lost a show's lease", extra={"show_id": str(show_id)})

    async def _end_orphans(self) -> None:
        """End the shows of processes that died (see Ownership.orphans)."""
        s = self.service
        for show_id in await s.ownership.orphans(s.config.grace_s):
            if show_id in s.shows:
                continue
            await s.hooks.announce(show_id, {"type": "video", "state": "ended", "viewers": 0})
            await s.hooks.ended(show_id)
            await s.ownership.unmark(show_id)
            log.info("ended the show of a gone process", extra={"show_id": str(show_id)})

    async def _end_ended(self) -> None:
        """Close the video of the shows this process relays that were ended through the API
        (POST /v1/shows/{id}/end by their seller or an operator): publisher and viewers."""
        s = self.service
        if not s.shows:
            return
        for show_id in await s.hooks.ended_among(list(s.shows)):
            relay = s.shows.get(show_id)
            if relay is not None:
                log.info("the show was ended: closing its video", extra={"show_id": str(show_id)})
                await self.end_show(relay)
