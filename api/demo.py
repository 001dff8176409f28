"""The demo data set (`python -m api seed-demo`): idempotent, safe to run on every start.

Each domain adds a step to `STEPS` when it lands; a step receives the pool and the users made
so far and must itself be idempotent.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from api.accounts import store
from api.accounts.passwords import hash_password
from api.accounts.rules import normalize_email
from api.ledger.demo import fund_demo_buyer
from core.auth import Role

log = logging.getLogger("souk.demo")

DEMO_PASSWORD = "souk-demo-password"  # noqa: S105 - public demo data, documented


@dataclass(frozen=True)
class DemoUsers:
    admin: store.User
    seller: store.User
    buyer: store.User
    rider: store.User


DemoStep = Callable[[asyncpg.Pool, DemoUsers], Awaitable[None]]


async def ensure_user(pool: asyncpg.Pool, email: str, name: str, role: Role) -> store.User:
    existing = await store.user_by_email(pool, normalize_email(email))
    if existing is not None:
        return existing
    return await store.create_user(
        pool,
        email=email,
        email_normalized=normalize_email(email),
        password_hash=await hash_password(DEMO_PASSWORD),
        display_name=name,
        role=role,
    )


DEMO_SHOW = "Layla's vintage evening"


async def seed_catalog(pool: asyncpg.Pool, users: DemoUsers) -> None:
    from api.catalog.seed import seed_demo_catalog

    await seed_demo_catalog(pool, users.seller.id, "USD")


async def seed_show(pool: asyncpg.Pool, users: DemoUsers) -> None:
    from api.shows.store import ensure_demo_show

    await ensure_demo_show(pool, users.seller.id, DEMO_SHOW)


async def seed_auction(pool: asyncpg.Pool, users: DemoUsers) -> None:
    """An auction in the demo show, open at once (runs 10 minutes, 10 s soft close), on the
    seller's first variant with a unit left, which it holds (as every auction does). A new one
    is made only when the show has no scheduled or open auction, so every demo start has one
    to watch and bid on (while the demo runs, `api.demo_crowd` lists the next ones)."""
    from api.auction_ports import CatalogVariants
    from api.catalog.store import first_variant_in_stock
    from api.shows.store import ensure_demo_show
    from auctions import engine, writes
    from auctions.model import Rules, new_auction
    from auctions.store import now_ms, show_has_live_auction

    show = await ensure_demo_show(pool, users.seller.id, DEMO_SHOW)
    async with pool.acquire() as conn, conn.transaction():
        live = await show_has_live_auction(conn, show.id)
        variant = await first_variant_in_stock(conn, users.seller.id)
        if live or variant is None or not await CatalogVariants().hold_unit(conn, variant.id):
            return
        now = await now_ms(conn)
        rules = Rules(
            auction_id=uuid.uuid4(), seller_id=users.seller.id, currency=variant.currency,
            start_price=1_000, starts_at=now, duration_ms=600_000,
            soft_close_ms=10_000, reserve_price=None, buy_now_price=None,
        )
        auction = engine.open_if_due(new_auction(rules), now)
        await writes.insert(conn, auction, variant_id=variant.id, show_id=show.id,
                           unit_held=True)


# In order: later steps use what earlier ones made. Each step is idempotent.
async def fund_buyer(pool: asyncpg.Pool, users: DemoUsers) -> None:
    await fund_demo_buyer(pool, users.buyer.id)


STEPS: list[DemoStep] = [fund_buyer, seed_catalog, seed_show, seed_auction]


async def seed(pool: asyncpg.Pool) -> DemoUsers:
    users = DemoUsers(
        admin=await ensure_user(pool, "admin@demo.souk.dev", "Demo Admin", Role.ADMIN),
        seller=await ensure_user(pool, "seller@demo.souk.dev", "Layla's Vintage", Role.SELLER),
        buyer=await ensure_user(pool, "buyer@demo.souk.dev", "Omar", Role.BUYER),
        rider=await ensure_user(pool, "rider@demo.souk.dev", "Sami the Rider", Role.RIDER),
    )
    for step in STEPS:
        await step(pool, users)
    log.info("demo data ready", extra={"password": DEMO_PASSWORD})
    return users
