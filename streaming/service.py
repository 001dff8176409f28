"""The live-video service of one process: its shows' relays, WHIP and WHEP sessions, limits,
keyframe requests and show announcements. The HTTP edge is `routes.py`; rules are in
`session.py` (offers: `sdp.py`); timeouts, grace expiry, leases and sweeps in `timers.py`.

A show's relay (`ShowRelay`) lives in the process that accepted its publisher. It outlives a
publisher's connection by SHOW_PUBLISHER_GRACE_S: a publisher reconnecting inside the grace
resumes the same show, its viewers keep their connections. After the grace the show ends (the
injected `ShowHooks.ended`), every viewer is closed and the lease released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiortc import RTCPeerConnection

from core.auth import Principal
from core.errors import NotFound, ServiceUnavailable
from core.redis_client import REDIS_ERRORS
from streaming.aiortc_hooks import request_keyframe
from streaming.errors import CodecChanged, ShowNotLive, TooManySessions
from streaming.joins import JoinSlots
from streaming.metrics import StreamingMetrics
from streaming.ownership import Ownership
from streaming.peers import accept_publisher, accept_viewer
from streaming.records import Redirect, Session, ShowHooks, ShowRelay, StreamConfig
from streaming.relay import Fanout, ViewerTrack
from streaming.sdp import plan_offer, same_codecs
from streaming.session import KeyframeThrottle, Phase, Route, check_capacity, route_viewer
from streaming.timers import ShowTimers

log = logging.getLogger("souk.streaming")


def _nothing() -> None:
    return None


@contextlib.contextmanager
def _redis_unavailable() -> Iterator[None]:
    """Who holds a show is in Redis: without Redis, WHIP/WHEP answer 503 (temporary)."""
    try:
        yield
    except REDIS_ERRORS as exc:
        log.warning("show ownership unavailable", extra={"error": repr(exc)})
        raise ServiceUnavailable("Live video is unavailable for a moment; retry.",
                                 headers={"Retry-After": "2"}) from None


class StreamingService:
    def __init__(self, config: StreamConfig, hooks: ShowHooks, ownership: Ownership,
                 metrics: StreamingMetrics) -> None:
        self.config = config
        self.hooks = hooks
        self.ownership = ownership
        self.metrics = metrics
        self.shows: dict[uuid.UUID, ShowRelay] = {}
        self.sessions: dict[str, Session] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.joins = JoinSlots(config.max_pending_handshakes, metrics)
        self._closing = False
        self.timers = ShowTimers(self)

    # --- counts ---------------------------------------------------------------------------
    @property
    def viewer_count(self) -> int:
        return sum(len(r.viewers) for r in self.shows.values())

    @property
    def publisher_count(self) -> int:
        return sum(1 for r in self.shows.values() if r.publisher is not None)

    def update_gauges(self) -> None:
        self.metrics.viewers.set(self.viewer_count)
        self.metrics.publishers.set(self.publisher_count)
        self.metrics.shows.set(len(self.shows))

    # --- WHIP -----------------------------------------------------------------------------
    async def publish(self, show_id: uuid.UUID, principal: Principal, offer: str,
                      base_url: str) -> tuple[Session, str]:
        """Accept a publisher's offer. Raises Redirect (another process holds the show),
        NotFound/NotTheSeller/ShowEnded (hooks), BadSdp, UnsupportedOffer, CodecChanged,
        TooManySessions."""
        await self.hooks.authorize_publisher(show_id, principal)
        plan = plan_offer(offer, role="whip", max_bytes=self.config.max_sdp_bytes)
        relay = self.shows.get(show_id)
        fresh = relay is None
        if relay is None:
            if self.publisher_count >= self.config.max_publishers:
                raise TooManySessions(params={"what": "publishers per process",
                                              "limit": self.config.max_publishers},
                                      headers={"Retry-After": "10"})
            with _redis_unavailable():
                owner = await self.ownership.acquire(show_id, base_url)
            if owner is not None:
                raise Redirect(owner)
            relay = self._new_relay(show_id, base_url, plan)
        elif (changed := same_codecs(relay.codecs, plan)) is not None:
            raise CodecChanged(params={"codec": changed.label})
        # The receiver's end needs no handling: its connection's state change ends the session.
        sinks = {kind: (self._frame_sink(relay, fanout), _nothing)
                 for kind, fanout in relay.fanouts.items()}
        try:
            pc, answer, receiver = await accept_publisher(offer, plan, sinks)
        except BaseException:
            if fresh and show_id not in self.shows:
                with contextlib.suppress(Exception):
                    await self.ownership.release(show_id, base_url)
            raise
        if fresh:
            if show_id in self.shows:  # a concurrent publish won: keep one relay
                await pc.close()
                raise Redirect(base_url)
            self.shows[show_id] = relay
        session = self._register(pc, "whip", show_id)
        session.receiver = receiver
        old = relay.publisher
        relay.publisher = session
        for fanout in relay.fanouts.values():
            fanout.new_source()
        if old is not None:
            self._spawn(self.close_session(old, "replaced"))
        self.update_gauges()
        return session, answer

    def _new_relay(self, show_id: uuid.UUID, base_url: str, plan: Any) -> ShowRelay:
        codecs = {c.kind: c for c in (plan.video, plan.audio) if c is not None}
        relay = ShowRelay(show_id, base_url, codecs, {},
                          KeyframeThrottle(self.config.keyframe_interval_s))
        for kind, codec in codecs.items():
            relay.fanouts[kind] = Fanout(codec, self.metrics, self._keyframer(relay))
        return relay

    def _keyframer(self, relay: ShowRelay) -> Callable[[str], None]:
        return lambda reason: self._keyframe(relay, reason)

    def _frame_sink(self, relay: ShowRelay, fanout: Fanout) -> Callable[[bytes, int], None]:
        def on_frame(data: bytes, timestamp: int) -> None:
            relay.last_media = time.monotonic()
            fanout.push(data, timestamp)
        return on_frame

    # --- WHEP -----------------------------------------------------------------------------
    async def watch(self, show_id: uuid.UUID, offer: str, my_url: str) -> tuple[Session, str]:
        """Accept a viewer's offer. Raises Redirect, ShowNotLive, NotFound (hooks),
        TooManySessions, BadSdp, UnsupportedOffer, NoCommonCodec."""
        started = time.monotonic()
        relay = self.shows.get(show_id)
        local = relay is not None and relay.presence.phase is not Phase.ENDED
        owner = None
        if not local:
            with _redis_unavailable():
                owner = await self.ownership.owner(show_id)
        route = route_viewer(local=local, owner_url=owner, my_url=my_url)
        if route is Route.REDIRECT:
            assert owner is not None
            self.metrics.redirects.inc()
            raise Redirect(owner)
        if route is Route.NOT_LIVE or relay is None:
            if not await self.hooks.show_exists(show_id):
                raise NotFound("No such show.")
            raise ShowNotLive()
        check_capacity(show_viewers=len(relay.viewers), process_viewers=self.viewer_count,
                       per_show=self.config.max_viewers_per_show,
                       per_process=self.config.max_viewers)
        self.joins.admit()  # or 503 viewer_joins_busy: joins in flight are capped
        session: Session | None = None
        try:
            session, answer = await self._answer_viewer(relay, offer, started)
        finally:
            if session is None:
                self.joins.release()
        return session, answer

    async def _answer_viewer(self, relay: ShowRelay, offer: str,
                             started: float) -> tuple[Session, str]:
        plan = plan_offer(offer, role="whep", max_bytes=self.config.max_sdp_bytes,
                          publisher=relay.codecs)
        tracks: dict[str, ViewerTrack] = {}
        for kind, fanout in relay.fanouts.items():
            on_first = (lambda: self.metrics.time_to_first_frame.observe(
                time.monotonic() - started)) if kind == "video" else (lambda: None)
            tracks[kind] = ViewerTrack(fanout, self.config.viewer_queue, on_first)
        try:
            pc, answer = await accept_viewer(offer, plan, tracks)
        except BaseException:
            for track in tracks.values():
                track.stop()
            raise
        if relay.presence.phase is Phase.ENDED or self.shows.get(relay.show_id) is not relay:
            await pc.close()
            raise ShowNotLive()
        session = self._register(pc, "whep", relay.show_id)
        self.joins.hand_to(session)
        session.tracks = list(tracks.values())
        for kind, track in tracks.items():
            relay.fanouts[kind].add(track)
        relay.viewers.add(session)
        self.update_gauges()
        return session, answer

    # --- sessions -------------------------------------------------------------------------
    def _register(self, pc: RTCPeerConnection, role: str, show_id: uuid.UUID) -> Session:
        session = Session(secrets.token_urlsafe(18), role, show_id, pc, time.monotonic())
        self.sessions[session.id] = session

        @pc.on("connectionstatechange")
        def on_state() -> None:
            state = pc.connectionState
            if state == "connected" and not session.connected:
                session.connected = True
                self.joins.release(session)
                if role == "whip":
                    self._spawn(self._publisher_connected(session))
            elif state in ("failed", "closed"):
                self._spawn(self.close_session(session, state))

        self.metrics.sessions.labels(role, "accepted").inc()
        return session

    async def _publisher_connected(self, session: Session) -> None:
        relay = self.shows.get(session.show_id)
        if relay is None or relay.publisher is not session:
            return
        relay.presence.publisher_connected()
        relay.last_media = time.monotonic()
        if not relay.live_announced:
            relay.live_announced = True
            await self.hooks.went_live(session.show_id)
            await self.ownership.mark_live(session.show_id)
        self._keyframe(relay, "publisher")
        await self.announce(relay)

    async def close_session(self, session: Session, reason: str) -> None:
        """Close one session (idempotent). A publisher's relay enters its grace period."""
        if session.closed:
            return
        session.closed = True
        self.sessions.pop(session.id, None)
        self.joins.release(session)
        self.metrics.session_ends.labels(session.role, reason).inc()
        relay = self.shows.get(session.show_id)
        for track in session.tracks:
            track.stop()
        if relay is not None:
            relay.viewers.discard(session)
            if relay.publisher is session:
                relay.publisher = None
                relay.presence.publisher_gone(time.monotonic())
        self.update_gauges()
        try:
            await session.pc.close()
        except Exception:  # closing must finish whatever aiortc raises
            log.exception("closing a peer connection failed")
        if relay is not None and not self._closing:
            await self.announce(relay)

    def find(self, session_id: str, show_id: uuid.UUID, role: str) -> Session | None:
        session = self.sessions.get(session_id)
        if session is None or session.show_id != show_id or session.role != role:
            return None
        return session

    # --- keyframes ------------------------------------------------------------------------
    def _keyframe(self, relay: ShowRelay, reason: str) -> None:
        now = time.monotonic()
        if relay.throttle.request(now):
            self.metrics.keyframe_requests.labels(reason, "sent").inc()
            self._send_pli(relay)
        else:
            self.metrics.keyframe_requests.labels(reason, "coalesced").inc()
            loop = asyncio.get_running_loop()
            loop.call_later(relay.throttle.wait_s(now) + 0.001, self._pending_keyframe, relay)

    def _pending_keyframe(self, relay: ShowRelay) -> None:
        if relay.throttle.due(time.monotonic()):
            self._send_pli(relay)

    def _send_pli(self, relay: ShowRelay) -> None:
        publisher = relay.publisher
        if publisher is not None and publisher.receiver is not None:
            self._spawn(request_keyframe(publisher.receiver))

    # --- life cycle -----------------------------------------------------------------------
    async def announce(self, relay: ShowRelay) -> None:
        state = relay.presence.phase.value
        current = (state, len(relay.viewers))
        if current == relay.announced or not relay.live_announced:
            return
        relay.announced = current
        try:
            await self.hooks.announce(relay.show_id, {"type": "video", "state": state,
                                                      "viewers": current[1]})
        except Exception:
            log.exception("announcing a show's video state failed")

    # --- timers (timers.py) ------------------------------------------------------------
    async def tick(self) -> None:
        """One pass of the timers: connection and media timeouts, grace expiry."""
        await self.timers.tick()

    async def run(self) -> None:
        """Timers, lease renewal and the sweeps until `stop()` (see ShowTimers.run)."""
        await self.timers.run()

    def stop(self) -> None:
        self.timers.stop()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Shutdown: close every connection and release the leases (shows stay live: their
        publishers may reconnect to another process inside the grace)."""
        self._closing = True
        await asyncio.gather(*(self.close_session(s, "shutdown")
                               for s in list(self.sessions.values())))
        for relay in list(self.shows.values()):
            for fanout in relay.fanouts.values():
                fanout.close()
            with contextlib.suppress(Exception):
                await self.ownership.release(relay.show_id, relay.base_url)
        self.shows.clear()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        self.update_gauges()
