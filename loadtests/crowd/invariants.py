"""What must hold after a show night, read back through the public and admin API:
- the hot auction closed with at most one winner, and exactly one order for its lot (the
  winner's, at the final price) when it sold, none otherwise;
- no oversell: the flash drop's units are conserved (left in stock + in live orders = units
  dropped) and never negative, and no catalog variant went negative;
- the ledger balances (`GET /v1/admin/ledger/check`).
Each check returns (name, ok, detail)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from loadtests.crowd.setup import House, bearer, check

Result = tuple[str, bool, str]
LIVE = ("pending_payment", "paid", "packed", "out_for_delivery", "delivered")


def wait_closed(c: httpx.Client, auction_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body = check(c.get(f"/v1/auctions/{auction_id}"), 200)
        # A sold lot's order is made when the closer settles it, a moment after the close:
        # wait for that too (`payment_state` is set once it has been tried).
        settled = body["state"] == "cancelled" or (
            body["state"] == "closed"
            and (body.get("leader_id") is None or body.get("payment_state") is not None))
        if settled or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def seller_orders(c: httpx.Client, admin: str, seller_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):  # bounded: 50,000 orders
        params = {"seller_id": seller_id, "limit": "50"} | ({"cursor": cursor} if cursor else {})
        page = check(c.get("/v1/admin/orders", params=params, headers=bearer(admin)), 200)
        out.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return out


def units(orders: list[dict[str, Any]], variant_id: str) -> int:
    return sum(line["quantity"] for o in orders if o["state"] in LIVE
               for line in o["lines"] if line["variant_id"] == variant_id)


def one_winner(c: httpx.Client, admin: str, h: House, timeout_s: float) -> Result:
    a = wait_closed(c, h.auction_id, timeout_s)
    if a["state"] != "closed":
        return ("auction closed with one winner", False, f"state {a['state']} after waiting")
    orders = [o for o in seller_orders(c, admin, h.auction_seller.id)
              if any(ln["variant_id"] == h.auction_variant_id for ln in o["lines"])]
    leader = a.get("leader_id")
    if leader is None:
        ok = not orders
        return ("auction closed with one winner", ok, f"no sale; {len(orders)} order(s)")
    ok = (len(orders) == 1 and orders[0]["buyer_id"] == leader
          and orders[0]["total"] == a["price"])
    detail = (f"winner {leader} at {a['price']} after {a['seq']} events; "
              f"{len(orders)} order(s) for the lot"
              + (f", buyer {orders[0]['buyer_id']} total {orders[0]['total']}" if orders else ""))
    return ("auction closed with one winner", ok, detail)


def no_oversell(c: httpx.Client, admin: str, h: House, flash_units: int) -> Result:
    product = check(c.get(f"/v1/products/{h.flash_product_id}"), 200)
    left = next(v["stock"] for v in product["variants"] if v["id"] == h.flash_variant_id)
    sold = units(seller_orders(c, admin, h.flash_seller.id), h.flash_variant_id)
    catalog = check(c.get(f"/v1/products/{h.catalog_product_id}"), 200)
    negative = [v["sku"] for v in catalog["variants"] if v["stock"] < 0]
    ok = left >= 0 and sold <= flash_units and left + sold == flash_units and not negative
    return ("no oversell", ok, f"flash drop: {flash_units} units, {sold} in orders, {left} left"
            + (f"; negative catalog stock: {negative}" if negative else ""))


def ledger(c: httpx.Client, admin: str) -> Result:
    report = check(c.get("/v1/admin/ledger/check", headers=bearer(admin)), 200)
    sums = ", ".join(f"{x['currency']} {x['sum']}" for x in report.get("currencies", []))
    return ("ledger balanced", bool(report.get("ok")),
            f"{report.get('transfers')} transfers, {report.get('entries')} entries; sums: {sums}")


def run_all(c: httpx.Client, admin: str | None, h: House, *, flash_units: int,
            close_timeout_s: float) -> list[Result]:
    if admin is None:
        skipped = "not checked: no admin credentials (--admin-email/--admin-password)"
        return [(name, False, skipped) for name in
                ("auction closed with one winner", "no oversell", "ledger balanced")]
    return [one_winner(c, admin, h, close_timeout_s), no_oversell(c, admin, h, flash_units),
            ledger(c, admin)]
