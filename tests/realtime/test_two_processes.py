"""The hub over real uvicorn processes and real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import Register
from tests.realtime.wsclient import WsClient
from tests.support.servers import ServerProcess


def admin_publish(server: ServerProcess, token: str, channel: str, data: Any) -> dict[str, Any]:
    r = httpx.post(f"{server.url}/v1/admin/channels/{channel}/publications",
                   json={"data": data}, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_publication_on_one_process_reaches_the_other_in_order(
    servers: Callable[..., ServerProcess], register: Register
) -> None:
    a, b = servers(), servers()
    admin = await register("admin")
    channel = f"show:{uuid.uuid4()}"
    json_sub = await WsClient.open(b.ws_url)
    mp_sub = await WsClient.open(b.ws_url, binary=True)
    try:
        for sub in (json_sub, mp_sub):
            r = await sub.call("subscribe", channel=channel)
            assert r["result"]["offset"] == 0 and r["result"]["publications"] == []
        epoch = r["result"]["epoch"]
        for i in range(40):
            out = admin_publish(a, admin.access_token, channel, {"n": i})
            assert out == {"epoch": epoch, "offset": i + 1}
        for sub in (json_sub, mp_sub):
            pubs = await sub.publications(40)
            assert [p["offset"] for p in pubs] == list(range(1, 41))
            assert [p["data"]["n"] for p in pubs] == list(range(40))
            assert {p["channel"] for p in pubs} == {channel}
    finally:
        await json_sub.close()
        await mp_sub.close()
