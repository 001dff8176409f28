"""Viewers: anonymous, subscribed to the show, its chat and its auction; they count what arrives
(gaps by offset are failures, see wsclient) and ping now and then (a keepalive round trip)."""

from __future__ import annotations

from typing import Any

from locust import constant, task

from loadtests.crowd.base import WsUser, auction_delays, plan
from loadtests.crowd.tracker import AuctionWatch


class Viewer(WsUser):
    role = "viewers"
    wait_time = constant(30)

    def on_start(self) -> None:
        p = plan()
        self.watch = AuctionWatch()
        sock = self.open_socket(self.environment, None, on_publication=self._publication)
        for channel in (f"show:{p.show_id}", f"show:{p.show_id}:chat",
                        f"auction:{p.auction_id}"):
            sock.subscribe(channel)

    def _publication(self, channel: str, msg: dict[str, Any], now: float) -> None:
        if channel.startswith("auction:") and self.socket is not None:
            auction_delays(self.watch, self.socket, plan().auction_id, msg.get("data"), now)

    @task
    def ping(self) -> None:
        if self.socket_ok() and self.socket is not None:
            self.socket.command("ping")
