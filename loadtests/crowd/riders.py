"""Riders: available for jobs, reporting positions both ways the contract offers: the websocket
`location` op (signed in) and the OsmAnd protocol over HTTP with a device key, as the Traccar
Client app does, at `rider_hz` each. Only when the server has the tracking routes (set-up reads
/openapi.json); otherwise the role is switched off with a message."""

from __future__ import annotations

import contextlib
import math
import random
import time

from locust import task
from locust.exception import StopUser

from loadtests.crowd.base import HttpWsUser, log, plan, settle
from loadtests.crowd.wsclient import CommandError

CENTRE = (25.2048, 55.2708)  # Dubai


class Rider(HttpWsUser):
    role = "riders"

    def wait_time(self) -> float:
        return 1 / plan().rider_hz

    def on_start(self) -> None:
        if not plan().features.get("tracking"):
            log.warning("riders: the server has no tracking routes; this role is off")
            raise StopUser()
        account = self.take_account(self.environment)
        self.headers = self.auth(account.token)
        self.lat = CENTRE[0] + random.uniform(-0.05, 0.05)
        self.lon = CENTRE[1] + random.uniform(-0.05, 0.05)
        self.heading = random.uniform(0, 360)
        self.turn = 0
        self.open_socket(self.environment, account.token)
        with self.client.put("/v1/riders/me/availability", json={"status": "available"},
                             headers=self.headers, name="PUT /v1/riders/me/availability",
                             catch_response=True) as r:
            settle(r, (200, 204))
        self.device: str | None = None
        self.key: str | None = None
        with self.client.post("/v1/tracking/devices", json={}, headers=self.headers,
                              name="POST /v1/tracking/devices", catch_response=True) as r:
            settle(r, (200, 201))
            if r.status_code in (200, 201):
                self.device, self.key = r.json()["id"], r.json()["key"]

    def on_stop(self) -> None:
        if getattr(self, "device", None):
            self.client.delete(f"/v1/tracking/devices/{self.device}", headers=self.headers,
                               name="DELETE /v1/tracking/devices/{id}")
        super().on_stop()

    def move(self, speed_ms: float, dt: float) -> None:
        self.heading = (self.heading + random.uniform(-20, 20)) % 360
        step = speed_ms * dt
        self.lat += step * math.cos(math.radians(self.heading)) / 111_320
        self.lon += step * math.sin(math.radians(self.heading)) / (
            111_320 * math.cos(math.radians(self.lat)))

    @task
    def report(self) -> None:
        speed = random.uniform(3, 12)  # m/s
        self.move(speed, 1 / plan().rider_hz)
        self.turn += 1
        if self.turn % 2 == 0 or self.key is None:
            if self.socket_ok() and self.socket is not None:
                with contextlib.suppress(CommandError):
                    self.socket.command("location", lat=round(self.lat, 6),
                                        lon=round(self.lon, 6), ts=int(time.time() * 1000),
                                        accuracy=8.0, speed=round(speed, 2),
                                        heading=round(self.heading, 1))
            return
        params = {"id": self.key, "lat": f"{self.lat:.6f}", "lon": f"{self.lon:.6f}",
                  "timestamp": str(int(time.time())), "speed": f"{speed * 1.943844:.2f}",
                  "bearing": f"{self.heading:.1f}", "accuracy": "8"}
        query = "&".join(f"{k}={v}" for k, v in params.items())
        with self.client.get(f"/v1/tracking/osmand?{query}", name="GET /v1/tracking/osmand",
                             catch_response=True) as r:
            settle(r, (200,))
