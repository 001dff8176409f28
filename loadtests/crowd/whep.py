"""WHEP viewers (CONTRACT "Live video"): each one a recvonly aiortc peer in this locust
process's helper (`python -m loadtests.crowd.whep_peer watch`, asyncio, started on first use),
counting RTP packets without decoding them. Reported: `WHEP connect` (the POST to the first
packet), and every 5 s `WHEP window` (response time: the longest silence between two packets;
length: bytes received) — a window without packets is a failure. Only when the server has the
WHEP route (set-up reads /openapi.json) and a publisher is on (the command starts one);
otherwise the role is switched off with a message."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import AsyncResult
from locust import User, constant, task
from locust.exception import StopUser

from loadtests.crowd.base import log, plan

Handler = Callable[[dict[str, Any]], None]


class PeerProcess:
    """The helper process shared by this locust process's WHEP viewers."""

    _one: PeerProcess | None = None

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "loadtests.crowd.whep_peer", "watch"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.handlers: dict[str, Handler] = {}
        gevent.spawn(self._read)

    @classmethod
    def get(cls) -> PeerProcess:
        if cls._one is None or cls._one.proc.poll() is not None:
            cls._one = cls()
        return cls._one

    def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            handler = self.handlers.get(event.get("sid", ""))
            if handler is not None:
                handler(event)


class WhepViewer(User):
    role = "whep"
    wait_time = constant(1)

    def on_start(self) -> None:
        p = plan()
        if not p.features.get("whep"):
            log.warning("whep: the server has no WHEP route; this role is off")
            raise StopUser()
        self.sid = uuid.uuid4().hex
        self.connected: AsyncResult = AsyncResult()
        self.peers = PeerProcess.get()
        self.peers.handlers[self.sid] = self._event
        self.peers.send({"op": "open", "sid": self.sid,
                         "url": f"{p.base_url}/v1/shows/{p.show_id}/whep"})
        try:
            self.connected.get(timeout=30)
        except Exception as exc:
            self._fire("connect", 0, 0, exc)

    def _fire(self, name: str, ms: float, length: int, error: Exception | None = None) -> None:
        self.environment.events.request.fire(request_type="WHEP", name=name, response_time=ms,
                                             response_length=length, exception=error,
                                             context={})

    def _event(self, e: dict[str, Any]) -> None:
        kind = e.get("event")
        if kind == "connected":
            self._fire("connect", float(e["ms"]), 0)
            self.connected.set(True)
        elif kind == "window":
            stalled = None if e["packets"] else RuntimeError("no RTP packet in the window")
            self._fire("window", float(e["max_gap_ms"]), int(e["bytes"]), stalled)
        elif kind == "failed":
            self._fire("connect", 0, 0, RuntimeError(str(e.get("error"))))
            self.connected.set(False)

    @task
    def watch(self) -> None:
        pass  # the helper reports; this user only holds its session open

    def on_stop(self) -> None:
        if hasattr(self, "sid"):
            self.peers.send({"op": "close", "sid": self.sid})
            self.peers.handlers.pop(self.sid, None)
