"""Show-night data through the public API only: accounts per role (registered, topped up with
the demo payment provider), the house sellers' catalog, flash drop and auction lot, the show
(started) and its soft-close auction (opening when the warm-up ends); which optional roles the
server can serve, from /openapi.json. Blocking httpx; runs before locust starts."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from loadtests.crowd.plan import Account

PASSWORD = uuid.uuid4().hex  # per run: these accounts only ever use their tokens
FUNDS = 5_000_000  # 50,000.00 per bidder and shopper: far above what a run spends


@dataclass
class House:
    catalog_seller: Account
    flash_seller: Account
    auction_seller: Account
    show_id: str
    auction_id: str
    auction_ends_at_ms: int
    auction_variant_id: str
    flash_product_id: str
    flash_variant_id: str
    catalog_product_id: str
    catalog_variant_ids: list[str]


def check(r: httpx.Response, *ok: int) -> dict[str, Any]:
    if r.status_code not in ok:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")
    body: dict[str, Any] = r.json() if r.content else {}
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def features(c: httpx.Client) -> dict[str, bool]:
    """Which optional domains this server serves (CONTRACT paths in its OpenAPI document)."""
    paths = set(check(c.get("/openapi.json"), 200).get("paths", {}))
    return {
        "tracking": "/v1/tracking/osmand" in paths and "/v1/tracking/devices" in paths,
        "whep": any(p.startswith("/v1/shows/") and p.endswith("/whep") for p in paths),
    }


def register(c: httpx.Client, role: str, tag: str, n: int, funds: int = 0) -> Account:
    email = f"{role}-{tag}-{n}@shownight.example.com"
    body = check(c.post("/v1/auth/register", json={
        "email": email, "password": PASSWORD, "display_name": f"{role} {n}", "role": role}), 201)
    account = Account(body["user"]["id"], body["access_token"])
    if funds:
        check(c.post("/v1/wallet/topups", json={"amount": funds}, headers={
            **bearer(account.token), "Idempotency-Key": uuid.uuid4().hex}), 200, 201)
    return account


def accounts(c: httpx.Client, counts: dict[str, int], tag: str,
             parallel: int = 8) -> dict[str, list[Account]]:
    """Registered accounts per role: bidders and shoppers are buyers with funds, chatters
    buyers, sellers and riders their own roles. Viewers and WHEP viewers watch anonymously."""
    jobs = {"bidders": ("buyer", FUNDS), "chatters": ("buyer", 0), "shoppers": ("buyer", FUNDS),
            "sellers": ("seller", 0), "riders": ("rider", 0)}
    out: dict[str, list[Account]] = {}
    with ThreadPoolExecutor(parallel) as pool:
        for role, (kind, funds) in jobs.items():
            n = counts.get(role, 0)
            out[role] = list(pool.map(
                lambda i, kind=kind, funds=funds, role=role: register(
                    c, kind, f"{tag}-{role}", i, funds), range(n)))
    return out


def house(c: httpx.Client, tag: str, *, flash_units: int, start_price: int, auction_opens: float,
          auction_duration_s: int, soft_close_s: int) -> House:
    """The sellers, products, show and hot auction of the night."""
    catalog, flash, lot = (register(c, "seller", f"{tag}-house", i) for i in range(3))
    cat = check(c.post("/v1/products", headers=bearer(catalog.token), json={
        "title": "Show-night catalog", "variants": [
            {"sku": f"CAT-{i}", "price": 500 + 100 * i, "stock": 1_000_000} for i in range(10)]}),
        201)
    drop = check(c.post("/v1/products", headers=bearer(flash.token), json={
        "title": "Flash drop", "variants": [
            {"sku": "FLASH", "price": 1500, "stock": flash_units}]}), 201)
    item = check(c.post("/v1/products", headers=bearer(lot.token), json={
        "title": "The night's lot", "variants": [{"sku": "LOT", "price": 9900, "stock": 1}]}),
        201)
    show = check(c.post("/v1/shows", headers=bearer(lot.token),
                        json={"title": "Show night"}), 201)
    check(c.post(f"/v1/shows/{show['id']}/start", headers=bearer(lot.token)), 200)
    opens = datetime.fromtimestamp(auction_opens, UTC).isoformat().replace("+00:00", "Z")
    auction = check(c.post("/v1/auctions", headers=bearer(lot.token), json={
        "variant_id": item["variants"][0]["id"], "show_id": show["id"],
        "start_price": start_price, "duration_s": auction_duration_s,
        "soft_close_s": soft_close_s, "starts_at": opens}), 201)
    ends = datetime.fromisoformat(auction["ends_at"].replace("Z", "+00:00"))
    return House(
        catalog_seller=catalog, flash_seller=flash, auction_seller=lot, show_id=show["id"],
        auction_id=auction["id"], auction_ends_at_ms=int(ends.timestamp() * 1000),
        auction_variant_id=item["variants"][0]["id"], flash_product_id=drop["id"],
        flash_variant_id=drop["variants"][0]["id"], catalog_product_id=cat["id"],
        catalog_variant_ids=[v["id"] for v in cat["variants"]])


def tidy(c: httpx.Client, h: House) -> list[str]:
    """After a run against someone else's deployment: end the show, take the house products
    off sale. Accounts stay (the API deletes none; their emails carry the run's tag) and the
    auctions have closed by themselves. Returns what could not be done."""
    problems = []
    calls = [(h.auction_seller, f"/v1/shows/{h.show_id}/end"),
             (h.catalog_seller, f"/v1/products/{h.catalog_product_id}/unpublish"),
             (h.flash_seller, f"/v1/products/{h.flash_product_id}/unpublish")]
    for who, path in calls:
        r = c.post(path, headers=bearer(who.token))
        if r.status_code >= 300 and r.status_code != 409:  # 409: already ended / unpublished
            problems.append(f"POST {path}: {r.status_code}")
    return problems
