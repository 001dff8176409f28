"""Two real uvicorn processes sharing one database form one deployment: money and encrypted
payout details written through one are read back through the other."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx

from tests.support.servers import ServerProcess


async def test_wallet_and_payout_details_across_processes(
    servers: Callable[..., ServerProcess],
) -> None:
    first = await asyncio.to_thread(servers)
    second = await asyncio.to_thread(servers)
    async with httpx.AsyncClient(timeout=30) as http:
        tokens = {}
        for role in ("buyer", "seller"):
            r = await http.post(f"{first.url}/v1/auth/register", json={
                "email": f"{role}-{uuid.uuid4().hex[:8]}@example.com",
                "password": "correct horse battery", "display_name": role, "role": role})
            assert r.status_code == 201, r.text
            tokens[role] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await http.post(f"{first.url}/v1/wallet/topups", json={"amount": 4_200},
                            headers={**tokens["buyer"], "Idempotency-Key": "x1"})
        assert r.status_code == 201, r.text
        replay = await http.post(f"{second.url}/v1/wallet/topups", json={"amount": 4_200},
                                 headers={**tokens["buyer"], "Idempotency-Key": "x1"})
        assert replay.json() == r.json()
        wallet = await http.get(f"{second.url}/v1/wallet", headers=tokens["buyer"])
        assert wallet.json() == {"currency": "USD", "available": 4_200, "held": 0}
        put = await http.put(f"{first.url}/v1/seller/payout-details", headers=tokens["seller"],
                             json={"account_holder": "A", "bank_name": "B",
                                   "account_number": "GB29NWBK60161331926819"})
        assert put.status_code == 200, put.text
        got = await http.get(f"{second.url}/v1/seller/payout-details", headers=tokens["seller"])
        assert got.status_code == 200
        assert got.json()["account_number"].endswith("6819")
