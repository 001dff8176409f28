"""Chatters: signed in, reading the show's chat (each message's delay from the server's `ts`)
and writing to it at `chat_rate` a second each (Poisson)."""

from __future__ import annotations

import random

from locust import task

from loadtests.crowd.base import WsUser, plan
from loadtests.crowd.wsclient import CommandError

LINES = ("so nice!", "what size is it?", "ship to Amman?", "🔥🔥🔥", "كم السعر؟", "next one!")


class Chatter(WsUser):
    role = "chatters"

    def wait_time(self) -> float:
        return random.expovariate(plan().chat_rate)

    def on_start(self) -> None:
        account = self.take_account(self.environment)
        sock = self.open_socket(self.environment, account.token)
        sock.subscribe(f"show:{plan().show_id}:chat")

    @task
    def say(self) -> None:
        if not self.socket_ok() or self.socket is None:
            return
        try:
            self.socket.command("publish", name="publish chat",
                                channel=f"show:{plan().show_id}:chat",
                                data={"text": random.choice(LINES)})
        except CommandError:
            return
