"""The websocket user's bookkeeping, fed frames directly (no socket, no gevent loop): subscribe
results start the gap accounting in stream order, a recovery's replayed publications are
counted and checked like live ones, and what it reports to locust."""

from __future__ import annotations

import time
from typing import Any

from loadtests.crowd.wsclient import SoukSocket


class Fired:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, **kw: Any) -> None:
        self.events.append(kw)

    def names(self, failed: bool) -> list[str]:
        return [e["name"] for e in self.events if (e["exception"] is not None) == failed]


def pub(channel: str, offset: int, data: Any = None) -> dict[str, Any]:
    return {"channel": channel, "offset": offset, "data": data or {}}


def test_a_subscribe_result_starts_the_count_where_the_stream_is() -> None:
    fired = Fired()
    sock = SoukSocket(fired, "ws://127.0.0.1:1/v1/ws")
    sock._subscribing[1] = "auction:a"
    now = time.monotonic()
    sock._dispatch({"id": 1, "result": {"epoch": "e1", "offset": 7, "recovered": False,
                                        "publications": []}}, now)
    for o in (8, 9, 11):
        sock._dispatch(pub("auction:a", o), now)
    assert sock.gaps.last == {"auction:a": 11} and sock.epochs == {"auction:a": "e1"}
    assert fired.names(failed=True) == ["gap auction"]
    assert sock.received == 3


def test_recovered_publications_are_counted_and_checked() -> None:
    fired = Fired()
    sock = SoukSocket(fired, "ws://127.0.0.1:1/v1/ws")
    sock.gaps.last["show:s:chat"] = 4  # where the lost connection had got to
    sock._subscribing[1] = "show:s:chat"
    chat = {"type": "chat", "text": "hi", "ts": time.time() * 1000}
    sock._dispatch({"id": 1, "result": {
        "epoch": "e1", "offset": 6, "recovered": True,
        "publications": [pub("show:s:chat", 5, chat), pub("show:s:chat", 6, chat)]}},
        time.monotonic())
    sock._dispatch(pub("show:s:chat", 7, chat), time.monotonic())
    assert fired.names(failed=True) == []
    assert fired.names(failed=False) == ["show chat chat"] * 3
    assert sock.gaps.last["show:s:chat"] == 7


def test_terminal_and_resumable_closes() -> None:
    sock = SoukSocket(Fired(), "ws://127.0.0.1:1/v1/ws")
    assert sock.resumable  # never opened / network gone: reconnect
    sock.close_code = 4008
    assert sock.resumable
    sock.close_code = 4501
    assert not sock.resumable


def test_replies_wake_their_waiters_and_errors_without_id_fail() -> None:
    fired = Fired()
    sock = SoukSocket(fired, "ws://127.0.0.1:1/v1/ws")
    from gevent.event import AsyncResult

    waiter: AsyncResult = AsyncResult()
    sock._pending[3] = waiter
    sock._dispatch({"id": 3, "result": {"ok": 1}}, 0.0)
    assert waiter.get(timeout=0) == {"id": 3, "result": {"ok": 1}}
    sock._dispatch({"error": {"code": "malformed_frame", "message": "x"}}, 0.0)
    assert fired.names(failed=True) == ["error without id"]
