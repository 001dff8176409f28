"""WHEP viewers (CONTRACT "Live video"): placeholder until the peer helper lands below."""

from __future__ import annotations

from locust import User, constant, task
from locust.exception import StopUser

from loadtests.crowd.base import log, plan


class WhepViewer(User):
    role = "whep"
    wait_time = constant(5)

    def on_start(self) -> None:
        if not plan().features.get("whep"):
            log.warning("whep: the server has no WHEP route; this role is off")
            raise StopUser()

    @task
    def watch(self) -> None:
        pass
