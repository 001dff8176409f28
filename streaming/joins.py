"""The process's viewer-join slots: WHEP sessions admitted but not yet connected (answer, ICE,
DTLS in flight), capped by STREAMING_MAX_PENDING_HANDSHAKES so a join storm cannot starve the
sessions already up — the publishers' consent checks and media first. The decision is
`session.check_handshakes`; this holds the count and its metrics."""

from __future__ import annotations

import secrets

from streaming.errors import HandshakesBusy
from streaming.metrics import StreamingMetrics
from streaming.records import Session
from streaming.session import check_handshakes


class JoinSlots:
    def __init__(self, limit: int, metrics: StreamingMetrics) -> None:
        self.limit = limit
        self.metrics = metrics
        self.pending = 0

    def admit(self) -> None:
        """Take a slot, or raise HandshakesBusy (503 + Retry-After, counted)."""
        try:
            check_handshakes(pending=self.pending, limit=self.limit,
                             spread=secrets.randbelow(1000) / 1000)
        except HandshakesBusy:
            self.metrics.sessions.labels("whep", "busy").inc()
            raise
        self._set(self.pending + 1)

    def hand_to(self, session: Session) -> None:
        """The admitted request became `session`: its slot is released with it."""
        session.handshaking = True

    def release(self, session: Session | None = None) -> None:
        """Give a slot back: `session` connected or closed (once), or, with None, an admitted
        request failed before it had a session."""
        if session is not None:
            if not session.handshaking:
                return
            session.handshaking = False
        self._set(max(0, self.pending - 1))

    def _set(self, value: int) -> None:
        self.pending = value
        self.metrics.pending_handshakes.set(value)
