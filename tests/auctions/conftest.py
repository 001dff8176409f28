"""Auction fixtures: the real service over the test's PostgreSQL schema and Redis prefix, with
in-memory twins only for the other domains' ports (hub, ledger, orders, catalog)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from auctions import store
from auctions.routes import build_routes
from auctions.scheduler import CloseScheduler
from auctions.service import AuctionService, AuctionSettings, NewAuction
from auctions.store import AuctionRow
from auctions.twins import MemoryFunds, MemoryOrders, MemoryPublisher, MemoryVariants
from auctions.wire import events_of
from core.auth import Principal, Role
from core.config import Settings
from core.context import Runtime
from testkit.services import drop_isolation, make_settings
from tests.conftest import Account


@dataclass
class Env:
    rt: Runtime
    svc: AuctionService
    scheduler: CloseScheduler
    publisher: MemoryPublisher
    funds: MemoryFunds
    orders: MemoryOrders
    variants: MemoryVariants

    def principal(self, account: Account) -> Principal:
        return Principal(uuid.UUID(account.id), Role(account.role), "test", 2**31)

    async def auction(self, seller: Account, **kw: Any) -> AuctionRow:
        variant = self.variants.add(uuid.UUID(seller.id))
        fields: dict[str, Any] = {"variant_id": variant, "start_price": 1_000, "duration_s": 60}
        fields.update(kw)
        return await self.svc.create(self.principal(seller), NewAuction(**fields))

    def published(self, auction_id: uuid.UUID) -> list[dict[str, Any]]:
        """The events published on the auction's channel, in order (batches flattened)."""
        return [e for data in self.publisher.published[f"auction:{auction_id}"]
                for e in events_of(data)]

    async def buyers(self, n: int, *, funds: int = 0) -> list[Account]:
        """`n` buyer accounts inserted directly (no password hashing: fast), each with `funds`
        in their (in-memory) wallet. They can bid through the service (by principal), not sign
        in over HTTP."""
        emails = [f"{uuid.uuid4().hex}@bidders.test" for _ in range(n)]
        rows = await self.rt.pool.fetch(
            """INSERT INTO users (email, email_normalized, password_hash, display_name, role)
               SELECT e, e, 'unusable', 'Bidder ' || n, 'buyer'
               FROM unnest($1::text[]) WITH ORDINALITY AS t(e, n)
               RETURNING id""", emails)
        if funds:
            for r in rows:
                self.funds.credit(r["id"], funds)
        return [Account(str(r["id"]), "", "", "buyer", "", "") for r in rows]

    async def order_of(self, auction_id: uuid.UUID) -> dict[str, Any]:
        """The (in-memory) order recorded on the auction's row."""
        row = await store.get(self.rt.pool, auction_id)
        assert row is not None and row.order_id is not None
        return self.orders.orders[row.order_id]

    async def expire(self, auction_id: uuid.UUID) -> None:
        """Move the end into the past (stands in for waiting)."""
        await self.rt.pool.execute(
            "UPDATE auctions SET ends_at = clock_timestamp() - interval '1 millisecond' "
            "WHERE id = $1", auction_id)


def make_env(rt: Runtime, **settings: Any) -> Env:
    publisher, funds = MemoryPublisher(), MemoryFunds()
    orders, variants = MemoryOrders(), MemoryVariants()
    svc = AuctionService(
        rt.pool, publisher=publisher, funds=funds, orders=orders, variants=variants,
        limiter=rt.limiter, settings=AuctionSettings(**({"bid_rate": 10_000} | settings)),
    )
    return Env(rt, svc, CloseScheduler(svc, retry_s=0), publisher, funds, orders, variants)


@pytest.fixture
async def settings(key_dir: Path) -> AsyncIterator[Settings]:
    """These tests drive their own closer over in-memory ports: the app's real closer (wired to
    the real ledger and catalog) is off, or it would race them for the same auctions."""
    s = make_settings(key_dir, auction_closer=False)
    yield s
    await drop_isolation(s)


@pytest.fixture
async def env(app: Starlette, rt: Runtime) -> AsyncIterator[Env]:
    e = make_env(rt)
    # In front of the app's own auction routes (wired to the real ports), so these win.
    app.router.routes[:0] = build_routes(lambda request: e.svc)
    yield e
    await e.svc.aclose()
