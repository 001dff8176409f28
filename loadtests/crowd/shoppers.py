"""Shoppers: browse the catalog, add to the cart, check out with an `Idempotency-Key` (every
fifth key is sent twice: the repeat must name the same order), pay; they read their `user:{id}`
channel, where order events arrive (delay from the event's `at`). When the flash drop opens,
every shopper tries once for one of its few units: `out_of_stock` is a business outcome there,
reported as `... [out_of_stock]`."""

from __future__ import annotations

import itertools
import random
import uuid

from locust import task

from loadtests.crowd.base import HttpWsUser, plan, settle

SOLD_OUT = ("out_of_stock",)


class Shopper(HttpWsUser):
    role = "shoppers"

    def wait_time(self) -> float:
        p = plan()
        pause = random.uniform(0.5, 1.5) * p.shopper_pause_s
        if not self.flash_tried:
            return max(0.0, min(pause, p.flash_at - self.now()))
        return pause

    def on_start(self) -> None:
        self.flash_tried = False
        self.checkouts = itertools.count(1)
        self.account = self.take_account(self.environment)
        self.headers = self.auth(self.account.token)
        sock = self.open_socket(self.environment, self.account.token)
        sock.subscribe(f"user:{self.account.id}")

    @task
    def shop(self) -> None:
        p = plan()
        self.socket_ok()  # reconnect (and recover) the notifications socket if it was cut
        if not self.flash_tried and p.flash_open(self.now()):
            self.flash_tried = True
            self.buy(p.flash_variant_id, flash=True)
            return
        if self.now() < p.flash_at - 1 and p.flash_open(self.now() + 1):
            return  # stay free for the drop
        self.browse()
        self.buy(random.choice(p.catalog_variant_ids), flash=False)

    def browse(self) -> None:
        with self.client.get("/v1/products?limit=20", name="GET /v1/products",
                             catch_response=True) as r:
            settle(r, (200,))
            items = r.json().get("items", []) if r.status_code == 200 else []
        if items:
            pid = random.choice(items)["id"]
            with self.client.get(f"/v1/products/{pid}", name="GET /v1/products/{id}",
                                 catch_response=True) as r:
                settle(r, (200,))

    def buy(self, variant_id: str, *, flash: bool) -> None:
        tag = " flash" if flash else ""
        expected = SOLD_OUT if flash else ()
        with self.client.post("/v1/cart/items", json={"variant_id": variant_id, "quantity": 1},
                              headers=self.headers, name=f"POST /v1/cart/items{tag}",
                              catch_response=True) as r:
            if settle(r, (200, 201), expected) or r.status_code not in (200, 201):
                return
        key = uuid.uuid4().hex
        with self.client.post("/v1/checkout", json={}, name=f"POST /v1/checkout{tag}",
                              headers={**self.headers, "Idempotency-Key": key},
                              catch_response=True) as r:
            code = settle(r, (201,), expected)
            order = r.json()["orders"][0]["id"] if r.status_code == 201 else None
        if order is None:
            if code in SOLD_OUT:  # take it out of the cart (404: it is not there any more)
                with self.client.delete(f"/v1/cart/items/{variant_id}", headers=self.headers,
                                        name="DELETE /v1/cart/items/{id}",
                                        catch_response=True) as r:
                    settle(r, (200, 204), ("not_found",))
            return
        if next(self.checkouts) % 5 == 0:
            self.replay(key, order)
        with self.client.post(f"/v1/orders/{order}/pay", headers=self.headers,
                              name=f"POST /v1/orders/{{id}}/pay{tag}", catch_response=True) as r:
            settle(r, (200,))

    def replay(self, key: str, order: str) -> None:
        with self.client.post("/v1/checkout", json={}, name="POST /v1/checkout (replayed key)",
                              headers={**self.headers, "Idempotency-Key": key},
                              catch_response=True) as r:
            if settle(r, (201,)) is None and r.status_code == 201:
                again = r.json()["orders"][0]["id"]
                if again != order:
                    r.failure(f"a replayed Idempotency-Key made order {again}, not {order}")
