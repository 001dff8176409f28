"""Posting one transfer inside the caller's transaction: its idempotent replay, the account
locks and overdraft refusal, the write, and the `wallet.changed` announcements. The flows that
use it (top-ups, holds, captures, refunds, settlements, payouts) are in `service.py`, whose
docstring states the call contract.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from api.ledger import rules, store
from api.ledger.balances import wallet
from api.ledger.errors import InsufficientFunds, InvalidAmount
from api.ledger.rules import AccountKey, AccountKind, LedgerRuleError, Leg, TransferKind
from core.errors import FieldError, IdempotencyKeyReused
from core.outbox import add_event

TransferLeg = store.StoredLeg


@dataclass(frozen=True, slots=True)
class Transfer:
    id: uuid.UUID
    kind: TransferKind
    order_id: uuid.UUID | None
    reference_id: uuid.UUID | None
    metadata: dict[str, Any]
    created_at: datetime
    legs: tuple[TransferLeg, ...]
    replayed: bool

    @property
    def amount(self) -> int:
        """Total moved: the sum of the positive legs."""
        return sum(leg.amount for leg in self.legs if leg.amount > 0)

    def leg(self, kind: AccountKind) -> TransferLeg | None:
        return next((leg for leg in self.legs if leg.account.kind is kind), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "kind": self.kind.value,
            "amount": self.amount,
            "order_id": str(self.order_id) if self.order_id else None,
            "reference_id": str(self.reference_id) if self.reference_id else None,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
        }


def transfer_view(t: store.StoredTransfer, *, replayed: bool) -> Transfer:
    return Transfer(t.id, t.kind, t.order_id, t.reference_id, t.metadata, t.created_at, t.legs,
                    replayed)


def amount_of(value: object, *, field: str = "amount", allow_negative: bool = False) -> int:
    try:
        return rules.check_amount(value, allow_negative=allow_negative)
    except LedgerRuleError as exc:
        raise InvalidAmount([FieldError(field, str(exc))]) from None


def currency_of(value: object) -> str:
    try:
        return rules.check_currency(value)
    except LedgerRuleError as exc:
        raise InvalidAmount([FieldError("currency", str(exc))]) from None


def reason_of(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > rules.MAX_REASON:
        raise InvalidAmount(
            [FieldError("reason", f"must be 1 to {rules.MAX_REASON} characters")]
        )
    return value.strip()


async def replay(
    conn: asyncpg.Connection, transfer_id: uuid.UUID, kind: TransferKind, digest: bytes
) -> Transfer | None:
    """Take the transfer id's lock; return the stored transfer if this id was already used with
    the same content, raise IdempotencyKeyReused if with other content, else None."""
    if not isinstance(transfer_id, uuid.UUID):
        raise InvalidAmount([FieldError("transfer_id", "must be a UUID")])
    await store.lock_transfer_id(conn, transfer_id)
    existing = await store.get_transfer(conn, transfer_id)
    if existing is None:
        return None
    if existing.kind is not kind or existing.request_hash != digest:
        raise IdempotencyKeyReused()
    return transfer_view(existing, replayed=True)


async def post(
    conn: asyncpg.Connection,
    *,
    transfer_id: uuid.UUID,
    kind: TransferKind,
    digest: bytes,
    legs: Sequence[Leg],
    order_id: uuid.UUID | None = None,
    reference_id: uuid.UUID | None = None,
    metadata: Mapping[str, Any] | None = None,
    must_cover: AccountKey | None = None,
) -> Transfer:
    """Lock the legs' accounts (ascending id), refuse overdrafts, write the transfer."""
    rules.check_legs(legs)
    accounts = await store.lock_accounts(conn, [leg.account for leg in legs])
    balances = {key: acc.balance for key, acc in accounts.items()}
    short = rules.overdrawn(legs, balances)
    if must_cover is not None:
        debit = sum(-leg.amount for leg in legs if leg.account == must_cover and leg.amount < 0)
        if balances.get(must_cover, 0) < debit:
            short.append(must_cover)
    if short:
        raise InsufficientFunds()
    stored = await store.write_transfer(
        conn,
        transfer_id=transfer_id,
        kind=kind,
        request_hash=digest,
        order_id=order_id,
        reference_id=reference_id,
        metadata=dict(metadata or {}),
        legs=legs,
        accounts=accounts,
    )
    await announce(conn, stored)
    return transfer_view(stored, replayed=False)


async def announce(conn: asyncpg.Connection, t: store.StoredTransfer) -> None:
    """Publish the new wallet balances of every buyer the transfer touched on `user:{id}`
    (through the outbox: sent only if the caller commits)."""
    touched = {
        (leg.account.owner, leg.account.currency)
        for leg in t.legs
        if leg.account.kind in (AccountKind.BUYER_WALLET, AccountKind.BUYER_HELD)
    }
    for owner, currency in sorted(touched):
        view = await wallet(conn, owner, currency)
        await add_event(
            conn,
            "wallet.changed",
            {
                "user_id": str(owner),
                "transfer_id": str(t.id),
                "kind": t.kind.value,
                "currency": currency,
                "available": view.available,
                "held": view.held,
            },
            channels=[f"user:{owner}"],
        )
