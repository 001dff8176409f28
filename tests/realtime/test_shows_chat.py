"""Shows over REST and their chat and viewer counts over the hub (real processes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from core.context import Runtime
from testkit.servers import ServerProcess
from tests.conftest import TIMING_FACTOR, Register
from tests.realtime.wsclient import WsClient


async def test_show_records(client: httpx.AsyncClient, register: Register) -> None:
    seller, buyer = await register("seller"), await register("buyer")
    r = await client.post("/v1/shows", json={"title": "Vintage hour"}, headers=buyer.headers)
    assert r.status_code == 403
    r = await client.post("/v1/shows", json={"title": ""}, headers=seller.headers)
    assert r.status_code == 422
    r = await client.post("/v1/shows", json={"title": "Vintage hour",
                                              "starts_at": "2030-01-01T10:00:00Z"},
                          headers=seller.headers)
    assert r.status_code == 201, r.text
    show = r.json()
    assert show["state"] == "scheduled"
    assert show["seller_id"] == seller.id
    assert show["starts_at"] == "2030-01-01T10:00:00Z"
    assert (await client.get(f"/v1/shows/{show['id']}")).json() == show
    listed = (await client.get("/v1/shows", params={"seller_id": seller.id})).json()["items"]
    assert [s["id"] for s in listed] == [show["id"]]
    assert (await client.get("/v1/shows/not-a-uuid")).status_code == 404
    assert (await client.get("/v1/shows", params={"limit": "0"})).status_code == 422
    r = await client.post(f"/v1/shows/{show['id']}/start", headers=buyer.headers)
    assert r.status_code == 403
    r = await client.post(f"/v1/shows/{show['id']}/end", headers=seller.headers)
    assert r.status_code == 409
    assert r.json()["code"] == "invalid_transition"
    r = await client.post(f"/v1/shows/{show['id']}/start", headers=seller.headers)
    assert r.json()["state"] == "live"
    assert r.json()["started_at"]
    r = await client.post(f"/v1/shows/{show['id']}/end", headers=seller.headers)
    assert r.json()["state"] == "ended"
    live = (await client.get("/v1/shows", params={"state": "live"})).json()["items"]
    assert show["id"] not in [s["id"] for s in live]


async def test_chat_state_changes_and_moderation(
    servers: Callable[..., ServerProcess], register: Register, client: httpx.AsyncClient
) -> None:
    a, b = servers(CHAT_RATE="3", CHAT_RATE_WINDOW_S="600", CHAT_MAX_CHARS="20"), servers(
        CHAT_RATE="3", CHAT_RATE_WINDOW_S="600", CHAT_MAX_CHARS="20")
    seller, other_seller = await register("seller"), await register("seller")
    talker, muted, banned = await register(), await register(), await register()
    show = (await client.post("/v1/shows", json={"title": "Live"}, headers=seller.headers)).json()
    chat, room = f"show:{show['id']}:chat", f"show:{show['id']}"

    reader = await WsClient.open(b.ws_url)  # anonymous: may read both channels
    assert "result" in await reader.call("subscribe", channel=room)
    assert "result" in await reader.call("subscribe", channel=chat)
    r = await client.post(f"/v1/shows/{show['id']}/start", headers=seller.headers)
    assert r.status_code == 200
    pushes = await reader.publications(1, wait_s=30)
    while pushes[0]["data"].get("type") != "state":  # viewer counts may come first
        pushes = await reader.publications(1, wait_s=30)
    assert pushes[0]["channel"] == room
    assert pushes[0]["data"]["state"] == "live"

    anon = await WsClient.open(a.ws_url)
    r = await anon.call("publish", channel=chat, data={"text": "hi"})
    assert r["error"]["code"] == "unauthorized"
    w = await WsClient.open(a.ws_url, token=talker.access_token)
    r = await w.call("publish", channel=chat, data={"text": "  hello there "})
    assert "result" in r
    r = await w.call("publish", channel=chat, data={"text": "x" * 21})
    assert r["error"]["code"] == "validation_failed"
    r = await w.call("publish", channel=chat, data={"text": "hi", "admin": True})
    assert r["error"]["code"] == "validation_failed"
    for _ in range(2):
        assert "result" in await w.call("publish", channel=chat, data={"text": "more"})
    r = await w.call("publish", channel=chat, data={"text": "too many"})
    assert r["error"]["code"] == "rate_limited"
    assert r["error"]["temporary"] is True

    got = []
    while len(got) < 3:
        got += [p for p in await reader.publications(1) if p["channel"] == chat]
    assert got[0]["data"]["text"] == "hello there"
    assert got[0]["data"]["user_id"] == talker.id
    assert [p["offset"] for p in got] == [1, 2, 3]

    for user, kind in ((muted, "mute"), (banned, "ban")):
        url = f"/v1/shows/{show['id']}/chat/restrictions/{user.id}"
        r = await client.put(url, json={"kind": kind}, headers=other_seller.headers)
        assert r.status_code == 403
        r = await client.put(url, json={"kind": kind}, headers=seller.headers)
        assert r.status_code == 204
    m = await WsClient.open(b.ws_url, token=muted.access_token)
    assert "result" in await m.call("subscribe", channel=chat)
    r = await m.call("publish", channel=chat, data={"text": "let me talk"})
    assert r["error"]["code"] == "muted"
    x = await WsClient.open(b.ws_url, token=banned.access_token)
    r = await x.call("subscribe", channel=chat)
    assert r["error"]["code"] == "banned"
    r = await client.delete(f"/v1/shows/{show['id']}/chat/restrictions/{muted.id}",
                            headers=seller.headers)
    assert r.status_code == 204
    assert "result" in await m.call("publish", channel=chat, data={"text": "thanks"})
    for c in (reader, anon, w, m, x):
        await c.close()


async def _poll_viewers(client: httpx.AsyncClient, show_id: str,
                        want: dict[str, object]) -> dict[str, object]:
    """The show's viewers once they are `want` (counts and chatters are written by each
    process every presence interval, not at once), or what they are after 30 s."""
    deadline = time.monotonic() + 30 * TIMING_FACTOR
    while True:
        body: dict[str, object] = (await client.get(f"/v1/shows/{show_id}/viewers")).json()
        if body == want or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.2)


async def test_viewer_counts_across_processes_and_after_a_crash(
    servers: Callable[..., ServerProcess], register: Register, client: httpx.AsyncClient
) -> None:
    a, b = servers(REALTIME_PRESENCE_TTL_S="3"), servers(REALTIME_PRESENCE_TTL_S="3")
    seller, buyer = await register("seller"), await register()
    show = (await client.post("/v1/shows", json={"title": "Count me"},
                              headers=seller.headers)).json()
    room, chat = f"show:{show['id']}", f"show:{show['id']}:chat"
    watchers = [await WsClient.open(a.ws_url), await WsClient.open(a.ws_url)]
    doomed = await WsClient.open(b.ws_url, token=buyer.access_token)
    for c in (*watchers, doomed):
        assert "result" in await c.call("subscribe", channel=room)
    assert "result" in await doomed.call("subscribe", channel=chat)
    body = await _poll_viewers(client, show["id"], {"count": 3, "chatters": [buyer.id]})
    assert body == {"count": 3, "chatters": [buyer.id]}
    # Viewer counts are pushed as latest-value publications (no offset).
    seen = []
    while not seen or seen[-1]["data"] != {"type": "viewers", "count": 3}:
        seen += await watchers[0].publications(1, wait_s=30)
    assert "offset" not in seen[-1]
    b.kill()  # no cleanup: its entries must expire with its heartbeat
    body = await _poll_viewers(client, show["id"], {"count": 2, "chatters": []})
    assert body == {"count": 2, "chatters": []}
    for c in watchers:
        await c.close()


async def test_demo_seed_creates_one_show(rt: Runtime, client: httpx.AsyncClient) -> None:
    from api import demo

    first = await demo.seed(rt.pool)
    await demo.seed(rt.pool)
    r = await client.get("/v1/shows", params={"seller_id": str(first.seller.id)})
    assert [s["title"] for s in r.json()["items"]] == ["Layla's vintage evening"]


async def test_openapi_lists_hub_and_show_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in ("/v1/ws", "/v1/admin/channels/{channel}/publications", "/v1/shows",
                 "/v1/shows/{show_id}", "/v1/shows/{show_id}/start", "/v1/shows/{show_id}/end",
                 "/v1/shows/{show_id}/chat/restrictions/{user_id}",
                 "/v1/shows/{show_id}/viewers"):
        assert path in paths, path
