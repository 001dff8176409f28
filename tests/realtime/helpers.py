"""Shared helpers for the real-process hub tests."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from testkit.servers import ServerProcess
from tests.realtime.wsclient import WsClient


def admin_publish(server: ServerProcess, token: str, channel: str, data: Any,
                  *, key: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"data": data}
    if key is not None:
        body["key"] = key
    r = httpx.post(f"{server.url}/v1/admin/channels/{channel}/publications",
                   json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code in (201, 202), r.text
    out: dict[str, Any] = r.json()
    return out


async def pipelined_publish(
    client: WsClient, channel: str, items: list[Any]
) -> list[dict[str, Any]]:
    """Send many publish commands without waiting, then collect every reply (in id order)."""
    first = None
    for data in items:
        id_ = next(client.ids)
        first = id_ if first is None else first
        await client.ws.send(orjson.dumps({"id": id_, "op": "publish", "channel": channel,
                                           "data": data}).decode())
    assert first is not None
    return [await client.reply(i) for i in range(first, first + len(items))]


def metrics_text(server: ServerProcess) -> str:
    return httpx.get(server.url + "/metrics", timeout=10).text


def metric(server: ServerProcess, name: str) -> float:
    """Sum of every sample of a metric on a server process's /metrics."""
    text = metrics_text(server)
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total
