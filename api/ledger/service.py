"""The ledger's Python interface for other domains (checkout, orders, admin) and its routes.

Call contract, for every function that moves money:
- `conn` is an asyncpg connection already inside the CALLER's transaction: the transfer commits
  or rolls back with the caller's other writes (order + stock + hold commit together). These
  functions never commit; after an exception the caller must roll back.
- `transfer_id` is chosen by the caller and makes the call idempotent: repeating a call with the
  same id and the same parameters returns the original transfer (`replayed=True`) and changes
  nothing; the same id with different parameters raises `IdempotencyKeyReused`. Derive it
  deterministically (for example `uuid5(order_id, "capture")`) so a retry reuses it.
- Amounts are positive integer cents (except `adjust_wallet`, signed); currencies ISO 4217.
- Raises `InsufficientFunds` (402), `RefundExceedsCaptured` (409), `HoldConflict` (409),
  `UnknownOrderFunds` (409), `PayoutNotPending` (409), `InvalidAmount` (422),
  `IdempotencyKeyReused` (409) — all AppErrors with stable codes.
- Settlement after delivery: the orders settlement job (`api.orders.jobs.settle_delivered`)
  calls `settle_order` with `fee_bps=Settings.platform_fee_bps` once the holding period is over.
- Holds are per order: `hold_for_order` places at most one hold per order; `release_hold` and
  `capture_hold` move exactly that order's held amount, once.
- Locks are taken in one order (transfer id, order funds row, accounts by id). A caller that
  runs several transfers in one transaction should do them in a stable order (for example by
  order id) to stay deadlock-free.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from api.ledger import rules, store
from api.ledger.balances import WalletView, order_escrow, order_funds, seller_payable, wallet
from api.ledger.errors import (
    HoldConflict,
    InsufficientFunds,
    InvalidAmount,
    PayoutNotPending,
    RefundExceedsCaptured,
    UnknownOrderFunds,
)
from api.ledger.posting import (
    Transfer,
    TransferLeg,
    amount_of,
    currency_of,
    post,
    reason_of,
    replay,
)
from api.ledger.rules import AccountKind, TransferKind
from core.errors import FieldError

__all__ = [
    "DEFAULT_FEE_BPS",
    "InsufficientFunds",
    "Transfer",
    "TransferLeg",
    "WalletView",
    "adjust_wallet",
    "capture_hold",
    "complete_payout",
    "fail_payout",
    "hold_for_order",
    "order_escrow",
    "order_funds",
    "refund_order",
    "release_hold",
    "request_payout",
    "seller_payable",
    "settle_order",
    "topup",
    "wallet",
]

DEFAULT_FEE_BPS = 800  # the default of Settings.platform_fee_bps


# --- flows ----------------------------------------------------------------------------------


async def topup(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    amount: int,
    currency: str,
    transfer_id: uuid.UUID,
    metadata: Mapping[str, Any] | None = None,
) -> Transfer:
    """Top-up clearing → the user's wallet (after the payment provider accepted the charge)."""
    amount, currency = amount_of(amount), currency_of(currency)
    digest = rules.fingerprint(
        TransferKind.TOPUP, {"user": user_id, "amount": amount, "currency": currency}
    )
    if (done := await replay(conn, transfer_id, TransferKind.TOPUP, digest)) is not None:
        return done
    return await post(
        conn, transfer_id=transfer_id, kind=TransferKind.TOPUP, digest=digest,
        legs=rules.topup_legs(user_id, amount, currency), metadata=metadata,
    )


async def hold_for_order(
    conn: asyncpg.Connection,
    *,
    buyer_id: uuid.UUID,
    order_id: uuid.UUID,
    amount: int,
    currency: str,
    transfer_id: uuid.UUID,
) -> Transfer:
    """Wallet → held funds, earmarked for `order_id`. Raises InsufficientFunds when the wallet
    holds less than `amount`, HoldConflict when the order already has a hold."""
    amount, currency = amount_of(amount), currency_of(currency)
    digest = rules.fingerprint(
        TransferKind.HOLD,
        {"buyer": buyer_id, "order": order_id, "amount": amount, "currency": currency},
    )
    if (done := await replay(conn, transfer_id, TransferKind.HOLD, digest)) is not None:
        return done
    existing = await store.lock_order_funds(conn, order_id)
    if existing is not None:
        raise HoldConflict(params={"state": existing["state"]})
    transfer = await post(
        conn, transfer_id=transfer_id, kind=TransferKind.HOLD, digest=digest,
        legs=rules.hold_legs(buyer_id, amount, currency), order_id=order_id,
    )
    inserted = await store.insert_order_funds(
        conn, order_id=order_id, buyer_id=buyer_id, currency=currency, held=amount,
        hold_transfer=transfer_id,
    )
    if not inserted:  # a concurrent hold for the same order committed first
        raise HoldConflict(params={"state": "held"})
    return transfer


async def release_hold(
    conn: asyncpg.Connection, *, order_id: uuid.UUID, transfer_id: uuid.UUID
) -> Transfer | None:
    """Held funds of `order_id` → the buyer's wallet (cancellation, expiry). Returns None when
    nothing is held for the order (never held, already released or captured)."""
    digest = rules.fingerprint(TransferKind.RELEASE, {"order": order_id})
    if (done := await replay(conn, transfer_id, TransferKind.RELEASE, digest)) is not None:
        return done
    funds = await store.lock_order_funds(conn, order_id)
    if funds is None or funds["state"] != "held":
        return None
    transfer = await post(
        conn, transfer_id=transfer_id, kind=TransferKind.RELEASE, digest=digest,
        legs=rules.release_legs(funds["buyer_id"], funds["held"], funds["currency"]),
        order_id=order_id, reference_id=funds["hold_transfer"],
    )
    await store.update_order_funds(conn, order_id, state="released")
    return transfer


async def capture_hold(
    conn: asyncpg.Connection, *, order_id: uuid.UUID, transfer_id: uuid.UUID
) -> Transfer:
    """Held funds of `order_id` → the order's escrow (payment). Raises UnknownOrderFunds or
    HoldConflict (already released or captured)."""
    digest = rules.fingerprint(TransferKind.CAPTURE, {"order": order_id})
    if (done := await replay(conn, transfer_id, TransferKind.CAPTURE, digest)) is not None:
        return done
    funds = await store.lock_order_funds(conn, order_id)
    if funds is None:
        raise UnknownOrderFunds()
    if funds["state"] != "held":
        raise HoldConflict(params={"state": funds["state"]})
    transfer = await post(
        conn, transfer_id=transfer_id, kind=TransferKind.CAPTURE, digest=digest,
        legs=rules.capture_legs(funds["buyer_id"], order_id, funds["held"], funds["currency"]),
        order_id=order_id, reference_id=funds["hold_transfer"],
    )
    await store.update_order_funds(
        conn, order_id, state="captured", captured=funds["held"], capture_transfer=transfer_id
    )
    return transfer


async def refund_order(
    conn: asyncpg.Connection,
    *,
    order_id: uuid.UUID,
    amount: int,
    transfer_id: uuid.UUID,
    reason: str,
) -> Transfer:
    """`amount` back to the buyer's wallet: from escrow before settlement; after settlement by
    reversing the seller payable and the fee share. Never more than captured minus refunded
    (RefundExceedsCaptured). Refunding an order that was only held is `release_hold`."""
    amount, reason = amount_of(amount), reason_of(reason)
    digest = rules.fingerprint(
        TransferKind.REFUND, {"order": order_id, "amount": amount, "reason": reason}
    )
    if (done := await replay(conn, transfer_id, TransferKind.REFUND, digest)) is not None:
        return done
    funds = await store.lock_order_funds(conn, order_id)
    if funds is None:
        raise UnknownOrderFunds()
    left = rules.refundable(funds)  # 0 before the capture; `amount` is at least 1
    if amount > left:
        raise RefundExceedsCaptured(params={"refundable": left})
    currency, buyer = funds["currency"], funds["buyer_id"]
    changes: dict[str, Any] = {"refunded": funds["refunded"] + amount}
    if funds["state"] == "captured":
        legs = rules.refund_from_escrow_legs(order_id, buyer, amount, currency)
        reference = funds["capture_transfer"]
    else:
        fee_part = rules.fee_share_of_refund(
            settled=funds["settled"], fee=funds["fee"],
            refunded_before=funds["refunded_after_settle"], amount=amount,
        )
        legs = rules.reversal_legs(order_id, funds["seller_id"], buyer, amount, fee_part, currency)
        reference = funds["settle_transfer"]
        changes["refunded_after_settle"] = funds["refunded_after_settle"] + amount
    transfer = await post(
        conn, transfer_id=transfer_id, kind=TransferKind.REFUND, digest=digest, legs=legs,
        order_id=order_id, reference_id=reference, metadata={"reason": reason},
    )
    await store.update_order_funds(conn, order_id, **changes)
    return transfer


async def refundable(conn: asyncpg.Connection, order_id: uuid.UUID) -> int:
    """What `refund_order` can still return for the order (captured minus refunded; 0 when
    nothing was captured). Locks the order's funds for the caller's transaction. Raises
    UnknownOrderFunds."""
    funds = await store.lock_order_funds(conn, order_id)
    if funds is None:
        raise UnknownOrderFunds()
    return rules.refundable(funds)


async def settle_order(
    conn: asyncpg.Connection,
    *,
    order_id: uuid.UUID,
    seller_id: uuid.UUID,
    transfer_id: uuid.UUID,
    fee_bps: int = DEFAULT_FEE_BPS,
) -> Transfer:
    """Everything left in the order's escrow → the seller's payable, minus the platform fee
    (`fee_bps` basis points, rounded half up; pass `Settings.platform_fee_bps`) → platform fees.
    Raises UnknownOrderFunds, or HoldConflict when the order is not captured or nothing is left
    (fully refunded)."""
    if not isinstance(fee_bps, int) or not 0 <= fee_bps <= rules.BPS_DENOMINATOR:
        raise InvalidAmount([FieldError("fee_bps", "must be 0 to 10000")])
    digest = rules.fingerprint(
        TransferKind.SETTLE, {"order": order_id, "seller": seller_id, "bps": fee_bps}
    )
    if (done := await replay(conn, transfer_id, TransferKind.SETTLE, digest)) is not None:
        return done
    funds = await store.lock_order_funds(conn, order_id)
    if funds is None:
        raise UnknownOrderFunds()
    remaining = rules.refundable(funds)
    if funds["state"] != "captured" or remaining <= 0:
        state = "refunded" if funds["state"] == "captured" else funds["state"]
        raise HoldConflict(params={"state": state})
    fee = rules.fee_for(remaining, fee_bps)
    transfer = await post(
        conn, transfer_id=transfer_id, kind=TransferKind.SETTLE, digest=digest,
        legs=rules.settle_legs(order_id, seller_id, remaining, fee, funds["currency"]),
        order_id=order_id, reference_id=funds["capture_transfer"],
        metadata={"fee_bps": fee_bps, "fee": fee},
    )
    await store.update_order_funds(
        conn, order_id, state="settled", seller_id=seller_id, settled=remaining, fee=fee,
        settle_transfer=transfer_id,
    )
    return transfer


async def request_payout(
    conn: asyncpg.Connection,
    *,
    seller_id: uuid.UUID,
    amount: int,
    currency: str,
    transfer_id: uuid.UUID,
) -> Transfer:
    """Seller payable → payout clearing (money on its way to the seller's bank). Raises
    InsufficientFunds when the payable is smaller than `amount`."""
    amount, currency = amount_of(amount), currency_of(currency)
    digest = rules.fingerprint(
        TransferKind.PAYOUT, {"seller": seller_id, "amount": amount, "currency": currency}
    )
    if (done := await replay(conn, transfer_id, TransferKind.PAYOUT, digest)) is not None:
        return done
    payable = rules.user_account(AccountKind.SELLER_PAYABLE, seller_id, currency)
    transfer = await post(
        conn, transfer_id=transfer_id, kind=TransferKind.PAYOUT, digest=digest,
        legs=rules.payout_legs(seller_id, amount, currency), must_cover=payable,
    )
    await store.insert_payout(
        conn, payout_id=transfer_id, seller_id=seller_id, amount=amount, currency=currency
    )
    return transfer


async def complete_payout(conn: asyncpg.Connection, *, payout_id: uuid.UUID) -> bool:
    """The bank confirmed the payout: it resolves as paid (the money stays in payout clearing,
    which totals what left the platform). False if it was not pending (already resolved, or
    unknown)."""
    payout = await store.lock_payout(conn, payout_id)
    if payout is None or payout["state"] != "requested":
        return False
    await store.resolve_payout(conn, payout_id, "paid")
    return True


async def fail_payout(
    conn: asyncpg.Connection, *, payout_id: uuid.UUID, transfer_id: uuid.UUID, reason: str
) -> Transfer:
    """The bank refused the payout: a payout_reversal transfer (referencing it) returns the
    amount to the seller's payable. Raises PayoutNotPending if it already resolved."""
    reason = reason_of(reason)
    digest = rules.fingerprint(
        TransferKind.PAYOUT_REVERSAL, {"payout": payout_id, "reason": reason}
    )
    done = await replay(conn, transfer_id, TransferKind.PAYOUT_REVERSAL, digest)
    if done is not None:
        return done
    payout = await store.lock_payout(conn, payout_id)
    if payout is None:
        raise PayoutNotPending(params={"state": "unknown"})
    if payout["state"] != "requested":
        raise PayoutNotPending(params={"state": payout["state"]})
    transfer = await post(
        conn, transfer_id=transfer_id, kind=TransferKind.PAYOUT_REVERSAL, digest=digest,
        legs=rules.payout_reversal_legs(payout["seller_id"], payout["amount"],
                                        payout["currency"]),
        reference_id=payout_id, metadata={"reason": reason},
    )
    await store.resolve_payout(conn, payout_id, "failed", transfer_id)
    return transfer


async def adjust_wallet(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    amount: int,
    currency: str,
    reason: str,
    admin_id: uuid.UUID,
    transfer_id: uuid.UUID,
) -> Transfer:
    """Admin correction of a wallet by signed `amount` against the adjustments account, with
    the admin and reason recorded. A debit beyond the wallet raises InsufficientFunds."""
    amount = amount_of(amount, allow_negative=True)
    currency, reason = currency_of(currency), reason_of(reason)
    digest = rules.fingerprint(
        TransferKind.ADJUSTMENT,
        {"user": user_id, "amount": amount, "currency": currency, "reason": reason,
         "admin": admin_id},
    )
    if (done := await replay(conn, transfer_id, TransferKind.ADJUSTMENT, digest)) is not None:
        return done
    return await post(
        conn, transfer_id=transfer_id, kind=TransferKind.ADJUSTMENT, digest=digest,
        legs=rules.adjustment_legs(user_id, amount, currency),
        metadata={"reason": reason, "admin_id": str(admin_id)},
    )
