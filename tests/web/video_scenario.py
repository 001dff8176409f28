"""A buyer watches a live show fed by a test publisher, in headless Chromium, on the server's own
show page: signs in, sees the video play (WHEP), bids and leads, is outbid by another client and
sees it within a second.

Run by tests/web/test_video.py inside a network namespace that has only a loopback interface
(``unshare -n``): Chromium gathers ICE candidates on every interface it sees, so this is how its
WebRTC stays on 127.0.0.1 (the same set-up as tests/streaming/browser_scenario.py, whose
helpers it uses). Prints one JSON document with what it saw. Bounded: every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from loadtests.checkout_bench import free_port, wait_ready
from loadtests.streaming.bench import start_server
from tests.streaming.browser_scenario import ROOT, chromium, private_redis, wait_for
from tests.support.services import drop_schema_and_keys

ARTIFACTS = ROOT / "tests" / "web" / "artifacts"
PASSWORD = "a long test passphrase"


async def account(c: httpx.AsyncClient, role: str, name: str) -> dict[str, str]:
    email = f"{role}-{uuid.uuid4().hex[:10]}@video.example.com"
    r = await c.post("/v1/auth/register", json={
        "email": email, "password": PASSWORD, "display_name": name, "role": role})
    r.raise_for_status()
    body = r.json()
    return {"email": email, "id": body["user"]["id"], "token": body["access_token"]}


async def setup(url: str) -> dict[str, Any]:
    await wait_ready(url)
    async with httpx.AsyncClient(base_url=url, timeout=10) as c:
        seller = await account(c, "seller", "Layla")
        buyer = await account(c, "buyer", "Mona")
        rival = await account(c, "buyer", "Rival")
        for who in (buyer, rival):
            r = await c.post("/v1/wallet/topups", json={"amount": 100_000}, headers={
                "Authorization": f"Bearer {who['token']}", "Idempotency-Key": who["id"]})
            r.raise_for_status()
        auth = {"Authorization": f"Bearer {seller['token']}"}
        r = await c.post("/v1/shows", json={"title": "Video evening"}, headers=auth)
        r.raise_for_status()
        show = r.json()["id"]
        r = await c.post("/v1/products", headers=auth, json={
            "title": "Silk scarf", "variants": [{"sku": f"scarf-{uuid.uuid4().hex[:6]}",
                                                 "price": 3000, "stock": 2}]})
        r.raise_for_status()
        r = await c.post("/v1/auctions", headers=auth, json={
            "variant_id": r.json()["variants"][0]["id"], "show_id": show,
            "start_price": 1000, "duration_s": 600})
        r.raise_for_status()
        return {"seller": seller, "buyer": buyer, "rival": rival, "show": show,
                "auction": r.json()["id"]}


def text(driver: Any, element_id: str) -> str:
    value: str = driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.textContent : '';",
        element_id)
    return value


def watch_and_bid(driver: Any, url: str, world: dict[str, Any]) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    show, buyer = world["show"], world["buyer"]
    driver.set_window_size(1280, 900)
    driver.get(f"{url}/signin?next=/shows/{show}")
    wait_for(lambda: driver.find_elements(By.ID, "email"), 10, "the sign-in form")
    driver.find_element(By.ID, "email").send_keys(buyer["email"])
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "signin-submit").click()
    wait_for(lambda: driver.find_elements(By.ID, "bid-next"), 15, "the show page")
    video = "const v = document.getElementById('video'); return [v.videoWidth, v.currentTime];"
    wait_for(lambda: driver.execute_script(video)[0] > 0, 20, "the video playing")
    first = driver.execute_script(video)
    second = wait_for(lambda: (now := driver.execute_script(video))[1] > first[1] and now, 10,
                      "the playback time moving on (frames keep coming)")
    driver.find_element(By.ID, "bid-next").click()
    wait_for(lambda: text(driver, "my-standing") == "You are the highest bidder", 5, "leading")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "show-with-video.png"))
    r = httpx.post(f"{url}/v1/auctions/{world['auction']}/bids", json={"amount": 5000},
                   headers={"Authorization": f"Bearer {world['rival']['token']}",
                            "Idempotency-Key": str(uuid.uuid4())}, timeout=10)
    r.raise_for_status()
    t0 = time.monotonic()
    wait_for(lambda: text(driver, "my-standing") == "You have been outbid", 5, "outbid notice")
    outbid_seen_s = time.monotonic() - t0
    driver.save_screenshot(str(ARTIFACTS / "show-with-video-outbid.png"))
    seen = {"video_before": first, "video_after": second, "outbid_seen_s": outbid_seen_s,
            "leader": text(driver, "leader"), "video_status": driver.execute_script(
                "return document.getElementById('video-status').dataset.state")}
    return seen | {"camera": studio_goes_live(driver, url, world)}


def studio_goes_live(driver: Any, url: str, world: dict[str, Any]) -> dict[str, Any]:
    """The seller, in another window (its own sessionStorage), creates a show in the studio and
    goes live from Chromium's fake camera through WHIP; the buyer's window then plays it."""
    from selenium.webdriver.common.by import By

    buyer_window = driver.current_window_handle
    driver.switch_to.new_window("window")
    driver.set_window_size(1280, 900)
    driver.get(f"{url}/signin?next=/studio")
    wait_for(lambda: driver.find_elements(By.ID, "email"), 10, "the sign-in form")
    driver.find_element(By.ID, "email").send_keys(world["seller"]["email"])
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "signin-submit").click()
    wait_for(lambda: driver.find_elements(By.ID, "new-title"), 15, "the studio")
    driver.find_element(By.ID, "new-title").send_keys("Camera show")
    driver.find_element(By.CSS_SELECTOR, "#new-show button").click()
    wait_for(lambda: text(driver, "live-h") == "Camera show", 10, "the new show picked")
    driver.find_element(By.ID, "go-live").click()
    wait_for(lambda: driver.execute_script(
        "return document.getElementById('live-state').dataset.connection") == "connected", 20,
        "the WHIP connection")

    def live_camera_show() -> str | None:  # the show turns live once the publisher's media flows
        shows = httpx.get(f"{url}/v1/shows?seller_id={world['seller']['id']}&state=live",
                          timeout=10).json()["items"]
        return next((s["id"] for s in shows if s["title"] == "Camera show"), None)

    camera_show = wait_for(live_camera_show, 10, "the camera show listed as live")
    driver.save_screenshot(str(ARTIFACTS / "studio-live-camera.png"))
    driver.switch_to.window(buyer_window)
    driver.get(f"{url}/shows/{camera_show}")
    video = "return document.getElementById('video').videoWidth;"
    wait_for(lambda: driver.execute_script(video) > 0, 20, "the camera show playing")
    return {"show_live": True, "viewer_width": driver.execute_script(video)}


def main() -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    dsn = os.environ["SCENARIO_DATABASE_URL"]  # the Unix socket: TCP 127.0.0.1 is not here
    schema = f"webvideo_{uuid.uuid4().hex[:10]}"
    result: dict[str, Any] = {}
    with private_redis(free_port()) as redis_url, tempfile.TemporaryDirectory() as scratch:
        os.environ.update(DATABASE_URL=dsn, REDIS_URL=redis_url, PAYMENT_PROVIDER="demo")
        from core.auth import generate_key

        generate_key(Path(scratch), "web")
        port = free_port()
        server = start_server(schema, port, scratch)
        url = f"http://127.0.0.1:{port}"
        publisher = None
        try:
            world = asyncio.run(setup(url))
            publisher = subprocess.Popen(
                [sys.executable, "-m", "streaming.publisher",
                 f"{url}/v1/shows/{world['show']}/whip", "--token", world["seller"]["token"],
                 "--seconds", "60"], cwd=ROOT, stdout=subprocess.DEVNULL)
            wait_for(lambda: httpx.get(f"{url}/v1/shows/{world['show']}").json()["state"]
                     == "live", 20, "the show going live")
            with chromium(Path(scratch) / "profile") as driver:
                result = watch_and_bid(driver, url, world)
        finally:
            if publisher is not None:
                publisher.terminate()
                publisher.wait(20)
            server.terminate()
            server.wait(20)
            asyncio.run(drop_schema_and_keys(dsn, redis_url, schema, f"{schema}:"))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
