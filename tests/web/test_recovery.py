"""A dropped websocket recovers without a reload and without a silent gap: the page's server
process stops (its clients are closed with 4000), another process of the same deployment takes
bids and a chat line meanwhile, the first comes back on the same address, and the page — never
reloaded — re-subscribes with `since` and shows exactly what it missed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import Register
from tests.support.servers import ServerProcess
from tests.web.conftest import screenshot, sign_in, text_of, topped_up, wait_for
from tests.web.test_show_page import live_show_with_auction

pytestmark = pytest.mark.slow


async def chat_through(server: ServerProcess, token: str, show: str, text: str) -> None:
    async with websockets.connect(f"{server.ws_url}/v1/ws",
                                  subprotocols=[websockets.Subprotocol("souk.v1.json")]) as ws:
        await ws.send(json.dumps({"id": 1, "op": "auth", "token": token}))
        await ws.send(json.dumps({"id": 2, "op": "publish", "channel": f"show:{show}:chat",
                                  "data": {"text": text}}))
        answered: set[int] = set()
        while answered != {1, 2}:
            for line in str(await ws.recv()).splitlines():
                reply = json.loads(line)
                assert "error" not in reply, reply
                answered.add(reply["id"])


async def test_dropped_websocket_recovers_what_it_missed_without_reloading(
    browser: Any, servers: Callable[..., ServerProcess], client: httpx.AsyncClient,
    register: Register, tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    page_server = servers(WS_DRAIN_S="1", WEBRTC_HOST_ADDRESSES="127.0.0.1")
    other = servers(WEBRTC_HOST_ADDRESSES="127.0.0.1")
    seller = await register("seller")
    buyer = await register("buyer", name="Mona")
    rival = await register("buyer", name="Rival")
    await topped_up(client, buyer)
    await topped_up(client, rival)
    show, auction = await live_show_with_auction(client, seller)

    sign_in(browser, page_server.url, buyer, f"/shows/{show}")
    wait_for(lambda: text_of(browser, "conn-status") == "Live updates on", 10, "the hub")
    browser.find_element(By.ID, "bid-next").click()
    wait_for(lambda: text_of(browser, "my-standing") == "You are the highest bidder", 5, "leading")
    browser.execute_script("window.stillTheSamePage = true;")

    page_server.stop()
    wait_for(lambda: browser.execute_script(
        "return document.getElementById('conn-status').dataset.state") == "reconnecting", 10,
        "the page noticing the drop")

    # Meanwhile, through the other process: two bids and a chat line.
    async with httpx.AsyncClient(base_url=other.url, timeout=10) as http:
        for amount in (2000, 3000):
            r = await http.post(f"/v1/auctions/{auction}/bids", json={"amount": amount},
                                headers={**rival.headers, "Idempotency-Key": str(uuid.uuid4())})
            assert r.status_code == 201, r.text
        view = (await http.get(f"/v1/auctions/{auction}")).json()
    await chat_through(other, rival.access_token, show, "bid while you were away")

    page_server.start(log_dir=tmp_path)
    wait_for(lambda: browser.execute_script(
        "return document.getElementById('conn-status').dataset.state") == "recovered", 20,
        "the page recovering")
    status = text_of(browser, "conn-status")
    assert status.startswith("Reconnected: caught up on"), status
    assert int(status.split("caught up on ")[1].split()[0]) >= 3  # 2 bid commits + 1 chat line
    wait_for(lambda: text_of(browser, "leader") == "Rival", 5, "the missed bids applied")
    assert text_of(browser, "my-standing") == "You have been outbid"
    assert text_of(browser, "bid-count") == f"{view['bid_count']} bids"
    assert "bid while you were away" in text_of(browser, "chat-log")
    assert browser.execute_script("return window.stillTheSamePage") is True
    screenshot(browser, "show-recovered")

    # And it is live again: a maximum above the rival's takes the lead back.
    field = browser.find_element(By.ID, "max-amount")
    field.clear()
    field.send_keys("50")
    browser.find_element(By.ID, "bid-max").click()
    wait_for(lambda: text_of(browser, "my-standing") == "You are the highest bidder", 5,
             "leading again after the recovery")
