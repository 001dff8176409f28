"""Two server processes on a real three-node Redis Cluster (REDIS_CLUSTER=true), each pointed
at a different node: channel offsets stay gapless and in order for channels on every node,
viewer counts add up across processes, and a live auction's bids — with the batched per-user
rate limit, whose keys span slots — reach a watcher on the other process in order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from redis.crc import key_slot

from auctions.wire import events_of
from testkit.servers import ServerProcess
from testkit.waiting import eventually
from tests.conftest import Register
from tests.integration.test_live_auction import account, fund
from tests.realtime.helpers import admin_publish
from tests.realtime.wsclient import WsClient
from tests.support.redis_cluster import RedisClusterNodes


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisClusterNodes]:
    nodes = RedisClusterNodes(tmp_path / "cluster")
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.kill()


@pytest.mark.parametrize("sharded", [False, True], ids=["classic", "sharded"])
async def test_two_servers_on_a_redis_cluster(
    servers: Callable[..., ServerProcess], register: Register, cluster: RedisClusterNodes,
    sharded: bool,
) -> None:
    """Classic pub/sub (the cluster forwards it to every node) or sharded (each process keeps
    one connection per node serving its channels)."""
    env = {"REDIS_CLUSTER": "true", "AUCTION_BID_RATE": "3", "AUCTION_BID_RATE_WINDOW_S": "60",
           "WS_COMMAND_RATE": "100000", "WS_COMMAND_BURST": "100000",
           "REALTIME_SHARDED_PUBSUB": "true" if sharded else "false"}
    a = servers(REDIS_URL=cluster.urls[0], **env)
    b = servers(REDIS_URL=cluster.urls[1], **env)
    admin = await register("admin")
    await _channels_stay_in_order(a, b, admin.access_token)
    async with httpx.AsyncClient(timeout=30) as http:
        seller = await account(http, a, "seller")
        await _viewers_add_up(http, a, b, seller)
        await _bids_and_rate_limits(http, a, b, seller)
    assert all(n > 0 for n in cluster.key_counts()), cluster.key_counts()


async def _channels_stay_in_order(a: ServerProcess, b: ServerProcess, token: str) -> None:
    """Channels whose keys hash to different nodes: every publication, in order, once."""
    channels = [f"auction:{uuid.uuid4()}" for _ in range(6)]
    subs = [await WsClient.open(b.ws_url) for _ in channels]
    for sub, channel in zip(subs, channels, strict=True):
        assert (await sub.call("subscribe", channel=channel))["result"]["offset"] == 0
    for i in range(5):
        for channel in channels:
            assert admin_publish(a, token, channel, {"n": i})["offset"] == i + 1
    for sub, channel in zip(subs, channels, strict=True):
        pubs = await sub.publications(5)
        assert [(p["channel"], p["offset"], p["data"]["n"]) for p in pubs] == [
            (channel, i + 1, i) for i in range(5)]
        await sub.close()


async def _viewers_add_up(http: httpx.AsyncClient, a: ServerProcess, b: ServerProcess,
                          seller: dict[str, Any]) -> None:
    """Presence on both processes; their node keys live on different slots."""
    r = await http.post(a.url + "/v1/shows", headers=seller["headers"],
                        json={"title": "Cluster night"})
    assert r.status_code == 201, r.text
    show = r.json()["id"]
    viewers = [await WsClient.open(s.ws_url) for s in (a, a, b)]
    for v in viewers:
        assert "result" in await v.call("subscribe", channel=f"show:{show}")
    async def three_viewers() -> bool:
        return bool((await http.get(f"{b.url}/v1/shows/{show}/viewers")).json()["count"] == 3)

    await eventually(three_viewers, 30.0, step=0.2, what="the viewer count reaching 3")
    for v in viewers:
        await v.close()


async def _four_bids(server: ServerProcess, who: dict[str, Any],
                     auction: str) -> list[dict[str, Any]]:
    """Four bids sent at once (their replies read after), so that the bids of all bidders
    share the sequencer's rate-limit batches."""
    ws = await WsClient.open(server.ws_url, token=who["token"])
    try:
        ids = []
        for i in range(4):
            ids.append(next(ws.ids))
            await ws.ws.send(orjson.dumps({
                "id": ids[-1], "op": "bid", "auction_id": auction, "kind": "max",
                "amount": 2_000 + 100 * i, "bid_id": str(uuid.uuid4())}).decode())
        return [await ws.reply(i) for i in ids]
    finally:
        await ws.close()


async def _bids_and_rate_limits(http: httpx.AsyncClient, a: ServerProcess, b: ServerProcess,
                                seller: dict[str, Any]) -> None:
    bidders = [await account(http, a, "buyer") for _ in range(4)]
    for who in bidders:
        await fund(http, a, who, 100_000)
    r = await http.post(a.url + "/v1/products", headers=seller["headers"], json={
        "title": "Clock", "variants": [{"sku": "CLK-1", "price": 9_000, "stock": 1}]})
    assert r.status_code == 201, r.text
    r = await http.post(a.url + "/v1/auctions", headers=seller["headers"], json={
        "variant_id": r.json()["variants"][0]["id"], "start_price": 1_000, "duration_s": 300})
    assert r.status_code == 201, r.text
    auction = r.json()["id"]
    watcher = await WsClient.open(b.ws_url)
    assert "result" in await watcher.call("subscribe", channel=f"auction:{auction}")
    replies = await asyncio.gather(*(_four_bids(a, who, auction) for who in bidders))
    for mine in replies:  # 3 tokens each: the fourth is refused, whatever else happened
        codes = [r["error"]["code"] if "error" in r else "ok" for r in mine]
        assert codes.count("rate_limited") == 1 and codes[-1] == "rate_limited", mine
    accepted = sorted(r["result"]["seq"] for mine in replies for r in mine if "result" in r)
    assert accepted == list(range(1, len(accepted) + 1)) and accepted, replies
    seen: list[int] = []
    while len(seen) < len(accepted):
        for msg in await watcher.publications(1, wait_s=20):
            seen += [e["seq"] for e in events_of(msg["data"]) if e.get("type") == "bid"]
    assert seen == accepted
    await watcher.close()


async def test_sharded_subscriptions_follow_a_migrated_slot(
    servers: Callable[..., ServerProcess], register: Register, cluster: RedisClusterNodes,
) -> None:
    """A channel's slot (and its keys) moves to another node while a watcher is subscribed:
    the server's reader follows it (the old node drops the shard subscription), and the
    watcher gets every publication, in order — those made while it moved from the history."""
    env = {"REDIS_CLUSTER": "true", "REALTIME_SHARDED_PUBSUB": "true"}
    a = servers(REDIS_URL=cluster.urls[0], **env)
    b = servers(REDIS_URL=cluster.urls[1], **env)
    admin = await register("admin")
    channel = f"auction:{uuid.uuid4()}"
    tag = f"{a.settings.redis_prefix}{{rt:{channel}}}"
    src = cluster.node_of(tag)
    watcher = await WsClient.open(a.ws_url)
    assert (await watcher.call("subscribe", channel=channel))["result"]["offset"] == 0
    assert admin_publish(b, admin.access_token, channel, {"n": 0})["offset"] == 1
    assert [p["offset"] for p in await watcher.publications(1)] == [1]
    cluster.migrate_slot(key_slot(tag.encode()), src, (src + 1) % 3)
    for n in range(1, 6):
        assert admin_publish(b, admin.access_token, channel, {"n": n})["offset"] == n + 1
        await asyncio.sleep(0.2)
    pubs = await watcher.publications(5, wait_s=30)
    assert [(p["offset"], p["data"]["n"]) for p in pubs] == [(n + 1, n) for n in range(1, 6)]
    await watcher.close()
