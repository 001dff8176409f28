"""Headless Chromium as a WHIP publisher and a WHEP player against a real server process.

Run by tests/streaming/test_browser.py inside a network namespace of its own that has only a
loopback interface (``unshare -n``), so no ICE candidate or check can reach any other address:
Chromium gathers on every interface it sees and cannot be told to keep to 127.0.0.1. Inside, it
starts a Redis of its own, a server (uvicorn, ICE on 127.0.0.1; PostgreSQL through its Unix
socket, a fresh schema dropped after), a static server for the test pages, and Chromium; then

1. Chromium publishes its fake camera through WHIP (pages/whip.html) and a second Chromium
   window plays the show through WHEP (pages/whep.html): frames decoded and rendered;
2. streaming.publisher (the painted synthetic camera) publishes a second show and Chromium
   plays it, reading the painted stamps back off its canvas: camera-to-screen latency.

Prints one JSON document with what it saw. Bounded: every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from loadtests.checkout_bench import free_port, register, wait_ready
from loadtests.streaming.bench import start_server
from testkit.waiting import scaled
from tests.support.services import drop_schema_and_keys

PAGES = Path(__file__).resolve().parent / "pages"
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream", "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required",
)


def wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    timeout_s = scaled(timeout_s)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{what} within {timeout_s} s")


@contextlib.contextmanager
def private_redis(port: int) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as directory:
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", directory], stdout=subprocess.DEVNULL)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            wait_for(lambda: subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False,
            ).stdout.strip() == b"PONG", 10, "redis answering")
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


class QuietPages(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def static_pages() -> Iterator[str]:
    handler = functools.partial(QuietPages, directory=str(PAGES))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def state(driver: webdriver.Chrome, name: str) -> dict[str, Any]:
    value: dict[str, Any] = driver.execute_script(f"return window.{name};")
    return value


def browser_to_browser(driver: webdriver.Chrome, pages: str, url: str, show: str,
                       token: str) -> dict[str, Any]:
    driver.get(f"{pages}/whip.html?url={url}/v1/shows/{show}/whip&token={token}")
    publisher = driver.current_window_handle
    wait_for(lambda: state(driver, "whip")["connection"] == "connected"
             or state(driver, "whip")["error"], 15, "the WHIP page connecting")
    whip = state(driver, "whip")
    if whip["error"]:
        return {"whip": whip}
    wait_for(lambda: httpx.get(f"{url}/v1/shows/{show}").json()["state"] == "live", 15,
             "the show going live")
    driver.switch_to.new_window("window")
    driver.get(f"{pages}/whep.html?url={url}/v1/shows/{show}/whep")
    wait_for(lambda: state(driver, "whep")["rendered"] >= 10 or state(driver, "whep")["error"],
             15, "the WHEP page rendering frames")
    first = driver.execute_async_script("window.inbound().then(arguments[0]);")

    def still_playing() -> Any:  # ten more frames decoded, and audio still coming
        now = driver.execute_async_script("window.inbound().then(arguments[0]);")
        return (now["framesDecoded"] >= first["framesDecoded"] + 10
                and now["audioPackets"] > first["audioPackets"] and now)

    second = wait_for(still_playing, 15, "the WHEP page still decoding frames")
    whep = state(driver, "whep")
    driver.switch_to.window(publisher)
    encoded = driver.execute_async_script("window.outbound().then(arguments[0]);")
    return {"whip": whip, "whep": {k: v for k, v in whep.items() if k != "latencies"},
            "decoded_before": first, "decoded_after": second, "publisher_encoded": encoded}


def synthetic_to_browser(driver: webdriver.Chrome, pages: str, url: str, show: str,
                         token: str) -> dict[str, Any]:
    publisher = subprocess.Popen(
        [sys.executable, "-m", "streaming.publisher", f"{url}/v1/shows/{show}/whip",
         "--token", token, "--seconds", "20"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: httpx.get(f"{url}/v1/shows/{show}").json()["state"] == "live", 15,
                 "the synthetic show going live")
        driver.switch_to.new_window("window")
        driver.get(f"{pages}/whep.html?url={url}/v1/shows/{show}/whep")
        wait_for(lambda: state(driver, "whep")["stamps"] >= 90 or state(driver, "whep")["error"],
                 15, "90 stamped frames in Chromium")
        whep = state(driver, "whep")
    finally:
        publisher.terminate()
        publisher.communicate(timeout=20)
    # a joining viewer first gets the frames since the last keyframe (the relay's GOP cache):
    # steady-state latency is read after the first 30 stamped frames, the join burst apart
    latencies = whep.pop("latencies")
    whep["join_burst_max_ms"] = max(latencies[:30], default=None)
    latencies = sorted(latencies[30:])
    whep["latency_n"] = len(latencies)
    whep["latency_p50_ms"] = latencies[len(latencies) // 2] if latencies else None
    whep["latency_p95_ms"] = latencies[int(len(latencies) * 0.95)] if latencies else None
    return whep


async def setup(url: str) -> tuple[str, str, str]:
    await wait_ready(url)
    async with httpx.AsyncClient(base_url=url, timeout=10) as c:
        _, seller = await register(c, "seller")
        shows = []
        for title in ("Chromium show", "Synthetic show"):
            r = await c.post("/v1/shows", json={"title": title}, headers=seller)
            r.raise_for_status()
            shows.append(r.json()["id"])
    return seller["Authorization"].removeprefix("Bearer "), shows[0], shows[1]


def main() -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    dsn = os.environ["SCENARIO_DATABASE_URL"]  # the Unix socket: TCP 127.0.0.1 is not here
    schema = f"browser_{uuid.uuid4().hex[:10]}"
    result: dict[str, Any] = {}
    with private_redis(free_port()) as redis_url, tempfile.TemporaryDirectory() as scratch:
        os.environ.update(DATABASE_URL=dsn, REDIS_URL=redis_url)
        from core.auth import generate_key

        generate_key(Path(scratch), "browser")
        port = free_port()
        server = start_server(schema, port, scratch)
        url = f"http://127.0.0.1:{port}"
        try:
            token, show, synthetic = asyncio.run(setup(url))
            with static_pages() as pages, chromium(Path(scratch) / "profile") as driver:
                result["browser"] = driver.capabilities.get("browserVersion")
                result["chromium_to_chromium"] = browser_to_browser(driver, pages, url, show,
                                                                    token)
                result["synthetic_to_chromium"] = synthetic_to_browser(driver, pages, url,
                                                                       synthetic, token)
        finally:
            server.terminate()
            server.wait(20)
            asyncio.run(drop_schema_and_keys(dsn, redis_url, schema, f"{schema}:"))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
