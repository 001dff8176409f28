"""A commit whose announcement never reached Redis (its writer died in between) and no later
commit on the auction: a real server's closing scheduler publishes it from PostgreSQL, and a
websocket watcher of that server gets the bid, in order."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from auctions.checks import BidRequest
from auctions.model import BidKind
from auctions.sequencer import Sequencer
from auctions.wire import events_of
from core.config import Settings
from core.db import create_pool
from core.errors import ServiceUnavailable
from testkit.waiting import eventually
from tests.conftest import TIMING_FACTOR
from tests.integration.test_live_auction import account, fund
from tests.realtime.wsclient import WsClient


class LosesEveryAnnouncement:
    """A publisher as seen by a writer that dies right after its COMMIT."""

    async def publish(self, channel: str, data: dict[str, Any]) -> None:
        raise ServiceUnavailable()

    async def announce(self, channel: str, number: int, items: list[dict[str, Any]],
                       *, after_gap: bool = False) -> Any:
        raise ConnectionError("the process died before publishing")


async def bids_seen(watcher: WsClient, channel: str, want: int) -> list[int]:
    seqs: list[int] = []
    while len(seqs) < want:
        [msg] = await watcher.publications(1, wait_s=20 * TIMING_FACTOR)
        if msg.get("channel") == channel:
            seqs += [e["seq"] for e in events_of(msg["data"]) if e.get("type") == "bid"]
    return seqs


async def test_a_committed_bid_whose_writer_died_before_publishing_reaches_the_watchers(
    servers, settings: Settings,  # type: ignore[no-untyped-def]
) -> None:
    assert settings.auction_closer  # the server runs the closing scheduler, which checks
    server = servers()
    async with httpx.AsyncClient(timeout=30) as http:
        seller = await account(http, server, "seller")
        alice, bob = await account(http, server, "buyer"), await account(http, server, "buyer")
        r = await http.post(server.url + "/v1/products", headers=seller["headers"], json={
            "title": "Tin robot", "variants": [{"sku": "ROBOT-1", "price": 9_000, "stock": 1}]})
        assert r.status_code == 201, r.text
        r = await http.post(server.url + "/v1/auctions", headers=seller["headers"], json={
            "variant_id": r.json()["variants"][0]["id"], "start_price": 1_000,
            "duration_s": 300})
        assert r.status_code == 201, r.text
        auction_id = uuid.UUID(r.json()["id"])
        channel = f"auction:{auction_id}"
        watcher = await WsClient.open(server.ws_url)
        assert "result" in await watcher.call("subscribe", channel=channel)

        # Alice's bid goes through the server: committed and published.
        await fund(http, server, alice, 50_000)
        alice_ws = await WsClient.open(server.ws_url, token=alice["token"])
        reply = await alice_ws.call("bid", auction_id=str(auction_id), amount=2_000,
                                    bid_id=str(uuid.uuid4()))
        assert reply["result"]["seq"] == 1, reply
        assert await bids_seen(watcher, channel, 1) == [1]
        # Bob's bid: another writer commits it, and dies before publishing.
        pool = await create_pool(settings.database_url, schema=settings.database_schema)
        try:
            dying = Sequencer(pool, LosesEveryAnnouncement())
            try:
                ack = await dying.submit(auction_id, BidRequest(
                    uuid.UUID(bob["id"]), 3_000, BidKind.MAX, uuid.uuid4()))
                assert ack.seq == 2
            finally:
                await dying.aclose()
        finally:
            await pool.close()

        # Nobody bids again; the server's scheduler finds it missing and publishes it.
        assert await bids_seen(watcher, channel, 1) == [2]
        # counted once its publication returns: the watcher may have it a moment earlier
        async def repaired() -> list[str] | None:
            metrics = (await http.get(server.url + "/metrics")).text
            lines = [line for line in metrics.splitlines()
                     if line.startswith("souk_auction_announcements_repaired_total ")]
            return None if lines == ["souk_auction_announcements_repaired_total 0.0"] else lines

        assert await eventually(repaired, 5.0, step=0.1) == [
            "souk_auction_announcements_repaired_total 1.0"]
        await watcher.close()
        await alice_ws.close()
