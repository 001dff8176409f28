"""A Redis restart or flush during traffic ends in a new epoch, never a silent gap. Uses a
private valkey-server (never the shared Redis other people use)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable

import httpx
import redis

from testkit.servers import ServerProcess
from tests.conftest import Register
from tests.realtime.wsclient import WsClient
from tests.support.private_redis import PrivateRedis


async def _publisher(url: str, token: str, channel: str, stop: asyncio.Event) -> None:
    """Publishes every 20 ms; failures while Redis is down are expected and ignored."""
    async with httpx.AsyncClient(timeout=5) as http:
        n = 0
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                await http.post(f"{url}/v1/admin/channels/{channel}/publications",
                                json={"data": {"n": n}},
                                headers={"Authorization": f"Bearer {token}"})
            n += 1
            await asyncio.sleep(0.02)


async def _until_closed(client: WsClient) -> tuple[int | None, list[int]]:
    code = await client.until_closed(wait_s=30)
    return code, [p["offset"] for p in client.inbox]


async def _lose_state_and_check(server: ServerProcess, admin_token: str, channel: str,
                                lose: Callable[[], None]) -> None:
    sub = await WsClient.open(server.ws_url)
    r = await sub.call("subscribe", channel=channel)
    old_epoch = r["result"]["epoch"]
    stop = asyncio.Event()
    traffic = asyncio.ensure_future(_publisher(server.url, admin_token, channel, stop))
    await sub.publications(5, wait_s=30)
    sub.inbox.clear()
    lose()
    code, offsets = await _until_closed(sub)
    # Before the close, what arrived followed on without a gap.
    assert offsets == list(range(offsets[0], offsets[0] + len(offsets))) if offsets else True
    assert code == 4010
    again = await WsClient.open(server.ws_url)
    r = await again.call("subscribe", channel=channel,
                         since={"epoch": old_epoch, "offset": offsets[-1] if offsets else 0})
    assert r["result"]["recovered"] is False
    assert r["result"]["epoch"] != old_epoch
    start = r["result"]["offset"]
    pubs = await again.publications(5, wait_s=30)
    assert [p["offset"] for p in pubs] == list(range(start + 1, start + 6))
    stop.set()
    await traffic
    await again.close()


async def test_redis_restart_and_flush_end_in_new_epochs(
    servers: Callable[..., ServerProcess], register: Register, private_redis: PrivateRedis
) -> None:
    admin = await register("admin")
    server = servers(REDIS_URL=private_redis.url)
    channel = f"auction:{uuid.uuid4()}"

    def restart() -> None:
        private_redis.kill()
        private_redis.start()

    await _lose_state_and_check(server, admin.access_token, channel, restart)

    def flush() -> None:
        client = redis.Redis.from_url(private_redis.url)
        try:
            client.flushall()
        finally:
            client.close()

    await _lose_state_and_check(server, admin.access_token, channel, flush)
