"""Sellers: every `seller_interval_s` each one lists a product (one unit), opens a show and
starts a short soft-close auction of that unit in it — the seller's side of a show night."""

from __future__ import annotations

import random
import uuid

from locust import task

from loadtests.crowd.base import HttpWsUser, plan, settle


class Seller(HttpWsUser):
    role = "sellers"

    def wait_time(self) -> float:
        return random.uniform(0.5, 1.5) * plan().seller_interval_s

    def on_start(self) -> None:
        self.headers = self.auth(self.take_account(self.environment).token)

    @task
    def open_a_lot(self) -> None:
        sku = f"LOT-{uuid.uuid4().hex[:10]}"
        with self.client.post("/v1/products", headers=self.headers, name="POST /v1/products",
                              json={"title": "Show-night lot", "variants": [
                                  {"sku": sku, "price": 2500, "stock": 1}]},
                              catch_response=True) as r:
            settle(r, (201,))
            if r.status_code != 201:
                return
            variant = r.json()["variants"][0]["id"]
        with self.client.post("/v1/shows", headers=self.headers, name="POST /v1/shows",
                              json={"title": "Show-night side show"}, catch_response=True) as r:
            settle(r, (201,))
            if r.status_code != 201:
                return
            show = r.json()["id"]
        with self.client.post("/v1/auctions", headers=self.headers, name="POST /v1/auctions",
                              json={"variant_id": variant, "show_id": show, "start_price": 1000,
                                    "duration_s": 30, "soft_close_s": 5},
                              catch_response=True) as r:
            settle(r, (201,))
