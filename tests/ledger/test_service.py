"""The ledger service interface on the real database: each flow, idempotency, refusals."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from api.ledger import service as ledger
from api.ledger.errors import (
    HoldConflict,
    InsufficientFunds,
    InvalidAmount,
    RefundExceedsCaptured,
    UnknownOrderFunds,
)
from api.ledger.rules import AccountKind
from core.context import Runtime
from core.errors import IdempotencyKeyReused
from tests.ledger.helpers import assert_ledger_sound

USD = "USD"


def tid() -> uuid.UUID:
    return uuid.uuid4()


async def test_topup_hold_capture_settle_payout(rt: Runtime) -> None:
    buyer, seller, order = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with rt.pool.acquire() as conn, conn.transaction():
        t = await ledger.topup(conn, user_id=buyer, amount=10_000, currency=USD, transfer_id=tid())
        assert t.amount == 10_000
        assert not t.replayed
        await ledger.hold_for_order(
            conn, buyer_id=buyer, order_id=order, amount=2_550, currency=USD, transfer_id=tid()
        )
        assert await ledger.wallet(conn, buyer, USD) == ledger.WalletView(USD, 7_450, 2_550)
        cap = await ledger.capture_hold(conn, order_id=order, transfer_id=tid())
        assert cap.amount == 2_550
        assert await ledger.order_escrow(conn, order) == 2_550
        assert await ledger.wallet(conn, buyer, USD) == ledger.WalletView(USD, 7_450, 0)
        settle = await ledger.settle_order(
            conn, order_id=order, seller_id=seller, transfer_id=tid(), fee_bps=1_000
        )
        fee_leg = settle.leg(AccountKind.PLATFORM_FEES)
        payable_leg = settle.leg(AccountKind.SELLER_PAYABLE)
        assert fee_leg is not None
        assert fee_leg.amount == 255
        assert payable_leg is not None
        assert payable_leg.amount == 2_295
        assert await ledger.order_escrow(conn, order) == 0
        assert await ledger.seller_payable(conn, seller, USD) == 2_295
        with pytest.raises(InsufficientFunds):
            async with conn.transaction():
                await ledger.request_payout(
                    conn, seller_id=seller, amount=2_296, currency=USD, transfer_id=tid()
                )
        await ledger.request_payout(
            conn, seller_id=seller, amount=2_295, currency=USD, transfer_id=tid()
        )
        assert await ledger.seller_payable(conn, seller, USD) == 0
    await assert_ledger_sound(rt.pool)


async def test_hold_refuses_more_than_wallet_and_release_returns_it(rt: Runtime) -> None:
    buyer, order = uuid.uuid4(), uuid.uuid4()
    async with rt.pool.acquire() as conn:
        await ledger.topup(conn, user_id=buyer, amount=1_000, currency=USD, transfer_id=tid())
        with pytest.raises(InsufficientFunds):
            async with conn.transaction():
                await ledger.hold_for_order(
                    conn, buyer_id=buyer, order_id=order, amount=1_001, currency=USD,
                    transfer_id=tid(),
                )
        hold_id = tid()
        async with conn.transaction():
            await ledger.hold_for_order(
                conn, buyer_id=buyer, order_id=order, amount=600, currency=USD,
                transfer_id=hold_id,
            )
        with pytest.raises(HoldConflict):  # one hold per order
            async with conn.transaction():
                await ledger.hold_for_order(
                    conn, buyer_id=buyer, order_id=order, amount=10, currency=USD,
                    transfer_id=tid(),
                )
        async with conn.transaction():
            released = await ledger.release_hold(conn, order_id=order, transfer_id=tid())
        assert released is not None
        assert released.amount == 600
        assert released.reference_id == hold_id
        async with conn.transaction():
            assert await ledger.release_hold(conn, order_id=order, transfer_id=tid()) is None
        with pytest.raises(HoldConflict):
            async with conn.transaction():
                await ledger.capture_hold(conn, order_id=order, transfer_id=tid())
        with pytest.raises(UnknownOrderFunds):
            async with conn.transaction():
                await ledger.capture_hold(conn, order_id=uuid.uuid4(), transfer_id=tid())
        assert await ledger.wallet(conn, buyer, USD) == ledger.WalletView(USD, 1_000, 0)
    await assert_ledger_sound(rt.pool)


async def test_same_transfer_id_replays_and_different_content_is_refused(rt: Runtime) -> None:
    buyer = uuid.uuid4()
    transfer_id = tid()
    async with rt.pool.acquire() as conn:
        first = await ledger.topup(
            conn, user_id=buyer, amount=500, currency=USD, transfer_id=transfer_id
        )
        again = await ledger.topup(
            conn, user_id=buyer, amount=500, currency=USD, transfer_id=transfer_id
        )
        assert again.replayed
        assert again.id == first.id
        assert again.legs == first.legs
        assert (await ledger.wallet(conn, buyer, USD)).available == 500
        with pytest.raises(IdempotencyKeyReused):
            await ledger.topup(
                conn, user_id=buyer, amount=501, currency=USD, transfer_id=transfer_id
            )
        with pytest.raises(IdempotencyKeyReused):  # same id used for another kind of transfer
            await ledger.request_payout(
                conn, seller_id=buyer, amount=500, currency=USD, transfer_id=transfer_id
            )
        assert (await ledger.wallet(conn, buyer, USD)).available == 500


async def test_concurrent_duplicates_of_one_transfer_apply_once(rt: Runtime) -> None:
    buyer, transfer_id = uuid.uuid4(), tid()

    async def once() -> ledger.Transfer:
        async with rt.pool.acquire() as conn, conn.transaction():
            return await ledger.topup(
                conn, user_id=buyer, amount=700, currency=USD, transfer_id=transfer_id
            )

    results = await asyncio.gather(*(once() for _ in range(6)))
    assert sum(not r.replayed for r in results) == 1
    assert (await ledger.wallet(rt.pool, buyer, USD)).available == 700


async def test_refund_limits_and_reversal_after_settlement(rt: Runtime) -> None:
    buyer, seller, order = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with rt.pool.acquire() as conn:
        await ledger.topup(conn, user_id=buyer, amount=5_000, currency=USD, transfer_id=tid())
        await ledger.hold_for_order(
            conn, buyer_id=buyer, order_id=order, amount=3_333, currency=USD, transfer_id=tid()
        )
        with pytest.raises(RefundExceedsCaptured):  # nothing captured yet
            async with conn.transaction():
                await ledger.refund_order(
                    conn, order_id=order, amount=1, transfer_id=tid(), reason="x"
                )
        capture_id = tid()
        await ledger.capture_hold(conn, order_id=order, transfer_id=capture_id)
        part = await ledger.refund_order(
            conn, order_id=order, amount=333, transfer_id=tid(), reason="damaged"
        )
        assert part.reference_id == capture_id
        assert part.metadata == {"reason": "damaged"}
        assert await ledger.order_escrow(conn, order) == 3_000
        await ledger.settle_order(
            conn, order_id=order, seller_id=seller, transfer_id=tid(), fee_bps=800
        )
        assert await ledger.seller_payable(conn, seller, USD) == 3_000 - 240
        with pytest.raises(RefundExceedsCaptured) as info:
            async with conn.transaction():
                await ledger.refund_order(
                    conn, order_id=order, amount=3_001, transfer_id=tid(), reason="too much"
                )
        assert info.value.params["refundable"] == 3_000
        for amount in (1_001, 999, 1_000):  # partial reversals; the fee share adds up exactly
            await ledger.refund_order(
                conn, order_id=order, amount=amount, transfer_id=tid(), reason="returned"
            )
        assert await ledger.seller_payable(conn, seller, USD) == 0
        assert (await ledger.wallet(conn, buyer, USD)).available == 5_000
        funds = await ledger.order_funds(conn, order)
        assert funds is not None
        assert funds["refunded"] == funds["captured"] == 3_333
    report = await assert_ledger_sound(rt.pool)
    assert report["transfers"] == 8


async def test_fully_refunded_order_cannot_be_settled(rt: Runtime) -> None:
    buyer, order = uuid.uuid4(), uuid.uuid4()
    async with rt.pool.acquire() as conn:
        await ledger.topup(conn, user_id=buyer, amount=100, currency=USD, transfer_id=tid())
        await ledger.hold_for_order(
            conn, buyer_id=buyer, order_id=order, amount=100, currency=USD, transfer_id=tid()
        )
        await ledger.capture_hold(conn, order_id=order, transfer_id=tid())
        await ledger.refund_order(conn, order_id=order, amount=100, transfer_id=tid(), reason="r")
        assert await ledger.order_escrow(conn, order) == 0
        with pytest.raises(HoldConflict):
            async with conn.transaction():
                await ledger.settle_order(
                    conn, order_id=order, seller_id=uuid.uuid4(), transfer_id=tid()
                )


async def test_adjustments_are_signed_and_never_overdraw(rt: Runtime) -> None:
    user, admin = uuid.uuid4(), uuid.uuid4()
    async with rt.pool.acquire() as conn:
        t = await ledger.adjust_wallet(
            conn, user_id=user, amount=250, currency="EUR", reason="goodwill", admin_id=admin,
            transfer_id=tid(),
        )
        assert t.metadata == {"reason": "goodwill", "admin_id": str(admin)}
        with pytest.raises(InsufficientFunds):
            async with conn.transaction():
                await ledger.adjust_wallet(
                    conn, user_id=user, amount=-251, currency="EUR", reason="claw back",
                    admin_id=admin, transfer_id=tid(),
                )
        await ledger.adjust_wallet(
            conn, user_id=user, amount=-250, currency="EUR", reason="claw back", admin_id=admin,
            transfer_id=tid(),
        )
        assert (await ledger.wallet(conn, user, "EUR")).available == 0


@pytest.mark.parametrize(
    ("amount", "currency"), [(0, USD), (-5, USD), (1.5, USD), (True, USD), (10, "usd"), (10, "")]
)
async def test_invalid_amounts_and_currencies_are_refused(
    rt: Runtime, amount: object, currency: str
) -> None:
    async with rt.pool.acquire() as conn:
        with pytest.raises(InvalidAmount):
            await ledger.topup(
                conn, user_id=uuid.uuid4(), amount=amount, currency=currency,  # type: ignore[arg-type]
                transfer_id=tid(),
            )


async def test_concurrent_holds_on_one_wallet_never_overdraw(rt: Runtime) -> None:
    buyer = uuid.uuid4()
    async with rt.pool.acquire() as conn:
        await ledger.topup(conn, user_id=buyer, amount=1_000, currency=USD, transfer_id=tid())

    async def hold() -> bool:
        try:
            async with rt.pool.acquire() as conn, conn.transaction():
                await ledger.hold_for_order(
                    conn, buyer_id=buyer, order_id=uuid.uuid4(), amount=300, currency=USD,
                    transfer_id=tid(),
                )
            return True
        except InsufficientFunds:
            return False

    outcomes = await asyncio.gather(*(hold() for _ in range(8)))
    assert sum(outcomes) == 3  # floor(1000 / 300)
    assert await ledger.wallet(rt.pool, buyer, USD) == ledger.WalletView(USD, 100, 900)
    await assert_ledger_sound(rt.pool)


async def test_wallet_changes_are_announced_through_the_outbox_only_on_commit(
    rt: Runtime,
) -> None:
    buyer = uuid.uuid4()
    with pytest.raises(RuntimeError):  # noqa: PT012 - the failure must follow the transfer
        async with rt.pool.acquire() as conn, conn.transaction():
            await ledger.topup(conn, user_id=buyer, amount=10, currency=USD, transfer_id=tid())
            raise RuntimeError("caller fails after the transfer: everything rolls back")
    async with rt.pool.acquire() as conn, conn.transaction():
        await ledger.topup(conn, user_id=buyer, amount=300, currency=USD, transfer_id=tid())
        await ledger.hold_for_order(conn, buyer_id=buyer, order_id=uuid.uuid4(), amount=120,
                                    currency=USD, transfer_id=tid())
    rows = await rt.pool.fetch(
        "SELECT channels, payload FROM outbox WHERE topic = 'wallet.changed' ORDER BY id"
    )
    assert [r["channels"] for r in rows] == [[f"user:{buyer}"]] * 2
    assert [(r["payload"]["kind"], r["payload"]["available"], r["payload"]["held"])
            for r in rows] == [("topup", 300, 0), ("hold", 180, 120)]


async def test_payout_resolves_once_and_a_failed_payout_returns_to_the_seller(
    rt: Runtime,
) -> None:
    from api.ledger.errors import PayoutNotPending

    buyer, seller, order = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with rt.pool.acquire() as conn:
        await ledger.topup(conn, user_id=buyer, amount=1_000, currency=USD, transfer_id=tid())
        await ledger.hold_for_order(conn, buyer_id=buyer, order_id=order, amount=1_000,
                                    currency=USD, transfer_id=tid())
        await ledger.capture_hold(conn, order_id=order, transfer_id=tid())
        await ledger.settle_order(conn, order_id=order, seller_id=seller, transfer_id=tid(),
                                  fee_bps=0)
        paid, failed = tid(), tid()
        await ledger.request_payout(conn, seller_id=seller, amount=400, currency=USD,
                                    transfer_id=paid)
        await ledger.request_payout(conn, seller_id=seller, amount=600, currency=USD,
                                    transfer_id=failed)
        assert await ledger.seller_payable(conn, seller, USD) == 0
        assert await ledger.complete_payout(conn, payout_id=paid) is True
        assert await ledger.complete_payout(conn, payout_id=paid) is False
        reversal_id = tid()
        reversal = await ledger.fail_payout(conn, payout_id=failed, transfer_id=reversal_id,
                                            reason="bank rejected the account")
        assert reversal.reference_id == failed
        again = await ledger.fail_payout(conn, payout_id=failed, transfer_id=reversal_id,
                                         reason="bank rejected the account")
        assert again.replayed
        assert await ledger.seller_payable(conn, seller, USD) == 600
        with pytest.raises(PayoutNotPending):
            await ledger.fail_payout(conn, payout_id=paid, transfer_id=tid(), reason="late")
        with pytest.raises(PayoutNotPending):
            await ledger.fail_payout(conn, payout_id=failed, transfer_id=tid(), reason="twice")
        assert await ledger.complete_payout(conn, payout_id=failed) is False
        states = dict(await conn.fetch("SELECT id, state FROM ledger_payouts"))
        assert states == {paid: "paid", failed: "failed"}
    await assert_ledger_sound(rt.pool)


async def test_demo_seed_funds_the_demo_buyer_once(rt: Runtime) -> None:
    from api.demo import seed
    from api.ledger.demo import DEMO_WALLET_CENTS

    users = await seed(rt.pool)
    await seed(rt.pool)
    view = await ledger.wallet(rt.pool, users.buyer.id, "USD")
    assert view == ledger.WalletView("USD", DEMO_WALLET_CENTS, 0)
