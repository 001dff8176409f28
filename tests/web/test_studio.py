"""The seller's studio in headless Chromium: create a show, start it, start an auction for one of
the seller's items, and watch a buyer's bid and chat line arrive. (Going live from the camera
through WHIP is in the loopback-only scenario of test_video.py.)"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import Register
from tests.support.servers import ServerProcess
from tests.web.conftest import (
    axe_serious,
    csp_violations,
    dump,
    screenshot,
    sign_in,
    text_of,
    topped_up,
    wait_for,
)

pytestmark = pytest.mark.slow


async def test_seller_runs_a_show_and_an_auction_from_the_studio(
    browser: Any, web_server: ServerProcess, client: httpx.AsyncClient, register: Register,
    axe_source: str,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    seller = await register("seller")
    buyer = await register("buyer", name="Mona")
    await topped_up(client, buyer)
    r = await client.post("/v1/products", headers=seller.headers, json={
        "title": "Clay pot", "variants": [{"sku": f"pot-{uuid.uuid4().hex[:8]}",
                                           "price": 4000, "stock": 2}]})
    assert r.status_code == 201, r.text
    variant = r.json()["variants"][0]["id"]

    sign_in(browser, web_server.url, seller, "/studio")
    wait_for(lambda: browser.find_elements(By.ID, "new-title"), 10, "the studio")
    browser.find_element(By.ID, "new-title").send_keys("Pottery night")
    browser.find_element(By.CSS_SELECTOR, "#new-show button").click()
    wait_for(lambda: text_of(browser, "live-h") == "Pottery night", 10, "the new show picked")
    wait_for(lambda: text_of(browser, "conn-status") == "Live updates on", 10, "the hub")
    browser.find_element(By.ID, "start-show").click()
    wait_for(lambda: text_of(browser, "live-state").startswith("Live"), 10, "the show live")
    shows = (await client.get(f"/v1/shows?seller_id={seller.id}&state=live")).json()["items"]
    assert [s["title"] for s in shows] == ["Pottery night"]
    show = shows[0]["id"]

    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f"option[value='{variant}']"), 10,
             "the seller's items")
    Select(browser.find_element(By.ID, "auction-variant")).select_by_value(variant)
    browser.find_element(By.CSS_SELECTOR, "#auction-form button").click()
    wait_for(lambda: "$10.00" in text_of(browser, "auction-now"), 10, "the auction open")
    auction = (await client.get(f"/v1/auctions?show_id={show}&state=open")).json()["items"][0]

    r = await client.post(f"/v1/auctions/{auction['id']}/bids", json={"amount": 1500},
                          headers={**buyer.headers, "Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code == 201, r.text
    wait_for(lambda: "Mona" in text_of(browser, "bid-log"), 5, "the bid in the studio")
    async with websockets.connect(f"{web_server.ws_url}/v1/ws",
                                  subprotocols=[websockets.Subprotocol("souk.v1.json")]) as ws:
        await ws.send(json.dumps({"id": 1, "op": "auth", "token": buyer.access_token}))
        await ws.send(json.dumps({"id": 2, "op": "publish", "channel": f"show:{show}:chat",
                                  "data": {"text": "lovely glaze"}}))
        await ws.recv()
        wait_for(lambda: "lovely glaze" in text_of(browser, "chat-log"), 5, "the chat line")
    screenshot(browser, "studio")
    serious = axe_serious(browser, axe_source)
    assert serious == [], dump(serious)
    assert csp_violations(browser) == []


async def test_studio_refuses_a_buyer(
    browser: Any, web_server: ServerProcess, register: Register,
) -> None:
    buyer = await register("buyer")
    sign_in(browser, web_server.url, buyer, "/studio")
    wait_for(lambda: text_of(browser, "sellers-only"), 10, "the refusal")
