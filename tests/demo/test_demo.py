"""`./scripts/demo` itself, started as a newcomer starts it (on a free port on 127.0.0.1, against
this test's own schema and Redis prefix): its first screen (the show playing video, an auction
receiving bids), the README's tour run twice, the crowd listing a new auction when one ends, and
nothing left running after Ctrl-C."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.auth import generate_key
from tests.conftest import TIMING_FACTOR
from tests.demo import tour
from tests.support.servers import ROOT, free_port
from tests.support.services import drop_schema_and_keys, service_urls, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIRST_SCREEN_S = 60.0


@dataclass
class Demo:
    url: str
    started: float  # time.monotonic() when ./scripts/demo was started
    proc: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, **kw: Any) -> Any:
        r = httpx.get(self.url + path, timeout=10, **kw)
        r.raise_for_status()
        return r.json()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _session_processes(sid: int) -> list[int]:
    """Every process of session `sid` (the demo and everything it started)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
            except ProcessLookupError:
                pass
    return pids


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    db, rd = service_urls()
    name = unique_name("demo")
    keys = tmp_path_factory.mktemp("demo-jwt")
    generate_key(keys, "k1")
    port = free_port()
    log = tmp_path_factory.mktemp("demo-log") / "demo.log"
    env = {**os.environ, "DATABASE_URL": db, "REDIS_URL": rd, "DATABASE_SCHEMA": name,
           "REDIS_PREFIX": f"{name}:", "JWT_KEY_DIR": str(keys), "HOST": "127.0.0.1",
           "PORT": str(port), "LOG_LEVEL": "WARNING",
           "ENCRYPTION_KEYS": "t1:" + base64.b64encode(os.urandom(32)).decode()}
    env.pop("SOUK", None)
    # Installing is not part of the first screen (the README says the first run installs).
    subprocess.run(["bash", "-c", "source scripts/bootstrap.sh"], cwd=ROOT, env=env,
                   check=True, timeout=900)
    with log.open("wb") as out:
        proc = subprocess.Popen([str(ROOT / "scripts" / "demo")], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    started = time.monotonic()
    try:
        yield Demo(f"http://127.0.0.1:{port}", started, proc, log)
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does: devenv forwards it to all
        try:
            proc.wait(30)
            hung = []
        except subprocess.TimeoutExpired:
            hung = _session_processes(proc.pid)
            for pid in hung:
                os.kill(pid, signal.SIGKILL)
            proc.wait(10)
        # The demo has exited: whatever of its session still runs outlived it.
        leftovers = _session_processes(proc.pid)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        asyncio.run(drop_schema_and_keys(db, rd, name, f"{name}:"))
        assert not hung, f"the demo did not stop within 30 s of Ctrl-C: {hung}\n{log.read_text()[-4000:]}"
        assert not leftovers, f"processes left after Ctrl-C: {leftovers}"


def _first_screen(demo: Demo) -> tuple[dict[str, Any], dict[str, Any]] | None:
    try:
        shows = demo.get("/v1/shows?state=live")["items"]
    except httpx.HTTPError:
        return None
    for show in shows:
        open_ = demo.get(f"/v1/auctions?show_id={show['id']}&state=open")["items"]
        if open_ and open_[0]["bid_count"] > 0:
            return show, open_[0]
    return None


def test_first_screen_the_show_plays_video(demo: Demo) -> None:
    """Within the first-screen time the demo show has its publisher: a WHEP viewer (as the page
    /shows/{id} is) gets 201 and decodes the synthetic camera's frames (their stamps read back,
    counting up); its session is then ended with DELETE."""
    deadline = demo.started + FIRST_SCREEN_S * TIMING_FACTOR
    counters = asyncio.run(_watch_video(demo, deadline, frames=5))
    print(f"video after {time.monotonic() - demo.started:.1f} s")
    assert len(counters) >= 5 and counters == sorted(set(counters)), counters


async def _watch_video(demo: Demo, deadline: float, frames: int) -> list[int]:
    """The frame counters of the first `frames` decoded frames of the demo show's video."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    from streaming.aiortc_hooks import use_host_addresses
    from streaming.synthetic import read_stamp

    use_host_addresses(["127.0.0.1"])  # as the demo's server: ICE on loopback only
    counters: list[int] = []
    tasks: list[asyncio.Task[None]] = []
    enough = asyncio.Event()

    async def consume(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while not enough.is_set():
                stamp = read_stamp(await track.recv())
                if stamp is not None:
                    counters.append(stamp.counter)
                if len(counters) >= frames:
                    enough.set()

    async with httpx.AsyncClient(timeout=10) as client:
        show_id = await _live_demo_show(client, demo, deadline)
        while True:
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver("video", direction="recvonly")
            pc.on("track", lambda track: tasks.append(asyncio.ensure_future(consume(track))))
            await pc.setLocalDescription(await pc.createOffer())
            r = await client.post(f"{demo.url}/v1/shows/{show_id}/whep",
                                  content=pc.localDescription.sdp,
                                  headers={"content-type": "application/sdp"})
            if r.status_code == 201:
                break
            await pc.close()
            assert r.status_code == 409 and r.json()["code"] == "show_not_live", r.text
            assert time.monotonic() < deadline, f"no video on the demo show:\n{demo.tail()}"
            await asyncio.sleep(0.5)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(r.text, "answer"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(enough.wait(), max(deadline - time.monotonic(), 5.0))
        finally:
            ended = await client.delete(r.headers["location"])
            for task in tasks:
                task.cancel()
            await pc.close()
        assert ended.status_code == 200, ended.text
        return counters


async def _live_demo_show(client: httpx.AsyncClient, demo: Demo, deadline: float) -> str:
    while True:
        assert demo.proc.poll() is None, demo.tail()
        with contextlib.suppress(httpx.HTTPError):  # not listening yet
            shows = (await client.get(demo.url + "/v1/shows?state=live")).json()["items"]
            for show in shows:
                if show["title"] == "Layla's vintage evening":
                    return str(show["id"])
        assert time.monotonic() < deadline, f"the demo show is not live:\n{demo.tail()}"
        await asyncio.sleep(0.5)


def test_first_screen_a_live_show_with_an_open_auction_receiving_bids(demo: Demo) -> None:
    deadline = demo.started + FIRST_SCREEN_S * TIMING_FACTOR
    seen = None
    while seen is None and time.monotonic() < deadline:
        assert demo.proc.poll() is None, demo.tail()
        seen = _first_screen(demo)
        if seen is None:
            time.sleep(0.5)
    assert seen is not None, f"no live show with a bid-on auction in 60 s:\n{demo.tail()}"
    show, auction = seen
    print(f"first screen after {time.monotonic() - demo.started:.1f} s")
    assert show["title"] == "Layla's vintage evening"
    assert auction["state"] == "open" and auction["leader"].endswith("(demo bot)")
    # The bids keep coming: a simulated bidder beats the price within a while.
    price = auction["price"]
    deadline = time.monotonic() + 30 * TIMING_FACTOR
    while demo.get(f"/v1/auctions/{auction['id']}")["price"] == price:
        assert time.monotonic() < deadline, "no further bid in 30 s"
        time.sleep(0.5)
    # The simulated people watch the show and chat in it.
    while demo.get(f"/v1/shows/{show['id']}/viewers")["count"] < 1:
        assert time.monotonic() < deadline, "nobody watches the show"
        time.sleep(0.5)
    said = asyncio.run(_chat_lines(demo.url, show["id"], 2, timeout_s=40 * TIMING_FACTOR))
    assert len(said) == 2 and all(s["text"] for s in said)


async def _chat_lines(url: str, show_id: str, count: int, timeout_s: float) -> list[Any]:
    from api.demo_client import Session

    lines = []
    async with Session.open(url) as session:
        await session.call("subscribe", channel=f"show:{show_id}:chat")
        async with asyncio.timeout(timeout_s):
            async for message in session.publications():
                lines.append(message["data"])
                if len(lines) == count:
                    break
    return lines


def test_the_readme_tour_works_twice(demo: Demo) -> None:
    readme = (ROOT / "README.md").read_text()
    steps = tour.steps(tour.tour_block(readme))
    assert len(steps) >= 15 and sum(len(s.expected) for s in steps) >= 12  # parsed it all
    _wait_ready(demo)
    for run in range(2):
        outputs = tour.run(steps, {"SOUK": demo.url}, timeout_s=180 * TIMING_FACTOR)
        problems = [p for s, out in zip(steps, outputs, strict=True) for p in tour.check(s, out)]
        assert not problems, f"run {run + 1}:\n" + "\n".join(problems)


def test_an_ended_auction_is_listed_again(demo: Demo) -> None:
    _wait_ready(demo)
    show = demo.get("/v1/shows?state=live")["items"][0]
    auction = _open_auction(demo, show["id"], not_id=None)
    admin = httpx.post(demo.url + "/v1/auth/login", timeout=10,
                       json={"email": "admin@demo.souk.dev", "password": "souk-demo-password"})
    token = admin.json()["access_token"]
    r = httpx.post(f"{demo.url}/v1/auctions/{auction['id']}/cancel", timeout=10,
                   json={"reason": "test: the demo lists the next one"},
                   headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    listed = _open_auction(demo, show["id"], not_id=auction["id"])
    assert listed["show_id"] == show["id"]
    deadline = time.monotonic() + 10 * TIMING_FACTOR
    while "auction open: " + listed["id"] not in demo.log.read_text():  # the crowd says so
        assert time.monotonic() < deadline, demo.tail()
        time.sleep(0.2)


def _wait_ready(demo: Demo) -> None:
    deadline = demo.started + 120 * TIMING_FACTOR
    while _first_screen(demo) is None:
        assert time.monotonic() < deadline and demo.proc.poll() is None, demo.tail()
        time.sleep(0.5)


def _open_auction(demo: Demo, show_id: str, not_id: str | None) -> dict[str, Any]:
    deadline = time.monotonic() + 15 * TIMING_FACTOR
    while True:
        items = demo.get(f"/v1/auctions?show_id={show_id}&state=open")["items"]
        items = [a for a in items if a["id"] != not_id]
        if items:
            return dict(items[0])
        assert time.monotonic() < deadline, f"no open auction in the show:\n{demo.tail()}"
        time.sleep(0.25)


def test_watch_signs_in_when_asked(demo: Demo) -> None:
    _wait_ready(demo)
    login = httpx.post(demo.url + "/v1/auth/login", timeout=10,
                       json={"email": "buyer@demo.souk.dev", "password": "souk-demo-password"})
    me = httpx.get(demo.url + "/v1/me", timeout=10,
                   headers={"authorization": f"Bearer {login.json()['access_token']}"}).json()
    channel = f"user:{me['id']}"
    env = {**os.environ, "SOUK": demo.url, "SOUK_PASSWORD": "souk-demo-password"}
    env.pop("SOUK_TOKEN", None)
    watch = [sys.executable, "-m", "api", "watch", channel, "--seconds", "1"]
    anonymous = subprocess.run(watch, cwd=ROOT, env=env, capture_output=True, text=True,
                               timeout=60, check=False)
    assert anonymous.returncode != 0 and "forbidden" in anonymous.stderr
    signed_in = subprocess.run([*watch, "--email", "buyer@demo.souk.dev"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=60, check=False)
    assert signed_in.returncode == 0, signed_in.stderr
    assert signed_in.stdout.startswith(f"watching {channel} ")


def test_an_ended_show_is_replaced(demo: Demo) -> None:
    """The seller ends the demo show: the crowd puts a show live again with an open auction
    (it says so), and the video loop publishes on it. Last in the module: it moves the demo."""
    _wait_ready(demo)
    old = demo.get("/v1/shows?state=live")["items"][0]
    login = httpx.post(demo.url + "/v1/auth/login", timeout=10,
                       json={"email": "seller@demo.souk.dev", "password": "souk-demo-password"})
    r = httpx.post(f"{demo.url}/v1/shows/{old['id']}/end", timeout=10,
                   headers={"authorization": f"Bearer {login.json()['access_token']}"})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 30 * TIMING_FACTOR
    while True:
        live = [s for s in demo.get("/v1/shows?state=live")["items"] if s["id"] != old["id"]]
        if live and f"show live: {live[0]['id']}" in demo.log.read_text():
            break
        assert time.monotonic() < deadline, demo.tail()
        time.sleep(0.5)
    assert _open_auction(demo, live[0]["id"], not_id=None)["show_id"] == live[0]["id"]
    counters = asyncio.run(_watch_video(demo, time.monotonic() + 40 * TIMING_FACTOR, frames=3))
    assert len(counters) >= 3, demo.tail()
