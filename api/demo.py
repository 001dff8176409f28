"""The demo data set (`python -m api seed-demo`): idempotent, safe to run on every start.

Each domain adds a step to `STEPS` when it lands; a step receives the pool and the users made
so far and must itself be idempotent.
"""

from __future__ import annotations

import logging
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


async def _catalog(pool: asyncpg.Pool, users: DemoUsers) -> None:
    from api.catalog.seed import seed_demo_catalog

    await seed_demo_catalog(pool, users.seller.id, "USD")


STEPS: list[DemoStep] = [fund_demo_buyer, _catalog]


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


async def seed_show(pool: asyncpg.Pool, users: DemoUsers) -> None:
    from api.shows.store import ensure_demo_show

    await ensure_demo_show(pool, users.seller.id, "Layla's vintage evening")


STEPS.append(seed_show)


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
