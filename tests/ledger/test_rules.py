"""Pure ledger rules: fees, refund fee shares, leg construction and checks (no database)."""

from __future__ import annotations

import ast
import uuid
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.ledger import rules
from api.ledger.rules import AccountKey, AccountKind, LedgerRuleError, Leg

cents = st.integers(min_value=1, max_value=rules.MAX_AMOUNT)
bps = st.integers(min_value=0, max_value=10_000)


@given(amount=st.integers(0, rules.MAX_AMOUNT), rate=bps)
def test_fee_is_the_rate_rounded_half_up_and_never_more_than_the_amount(
    amount: int, rate: int
) -> None:
    fee = rules.fee_for(amount, rate)
    exact = Fraction(amount * rate, 10_000)
    assert 0 <= fee <= amount
    assert abs(fee - exact) <= Fraction(1, 2)
    if exact - int(exact) == Fraction(1, 2):
        assert fee == int(exact) + 1


def test_fee_examples() -> None:
    assert rules.fee_for(2_550, 1_000) == 255
    assert rules.fee_for(5, 1_000) == 1  # 0.5 rounds up
    assert rules.fee_for(4, 1_000) == 0
    assert rules.fee_for(100, 0) == 0
    assert rules.fee_for(100, 10_000) == 100
    with pytest.raises(LedgerRuleError):
        rules.fee_for(100, 10_001)


@settings(max_examples=200)
@given(settled=cents, rate=bps, parts=st.lists(cents, max_size=8))
def test_partial_refund_fee_shares_add_up_to_exactly_the_fee(
    settled: int, rate: int, parts: list[int]
) -> None:
    fee = rules.fee_for(settled, rate)
    refunded, taken = 0, 0
    # Some partial refunds, then whatever is left: the fee shares must add up to the fee.
    amounts = [*parts, settled]
    for part in amounts:
        amount = min(part, settled - refunded)
        if amount == 0:
            break
        share = rules.fee_share_of_refund(
            settled=settled, fee=fee, refunded_before=refunded, amount=amount
        )
        assert 0 <= share <= amount
        refunded += amount
        taken += share
        assert taken <= fee
    assert refunded == settled
    assert taken == fee
    with pytest.raises(LedgerRuleError):
        rules.fee_share_of_refund(settled=settled, fee=fee, refunded_before=refunded, amount=1)


@given(amount=cents, rate=bps, refund_part=st.integers(1, 100))
def test_every_flow_builds_balanced_legs(amount: int, rate: int, refund_part: int) -> None:
    user, seller, order = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    fee = rules.fee_for(amount, rate)
    refund = max(1, amount * refund_part // 100)
    flows = [
        rules.topup_legs(user, amount, "USD"),
        rules.hold_legs(user, amount, "USD"),
        rules.release_legs(user, amount, "USD"),
        rules.capture_legs(user, order, amount, "USD"),
        rules.settle_legs(order, seller, amount, fee, "USD"),
        rules.refund_from_escrow_legs(order, user, amount, "USD"),
        rules.reversal_legs(order, seller, user, refund,
                            rules.fee_share_of_refund(settled=amount, fee=fee, refunded_before=0,
                                                      amount=refund), "USD"),
        rules.payout_legs(seller, amount, "USD"),
        rules.payout_reversal_legs(seller, amount, "USD"),
        rules.adjustment_legs(user, -amount, "USD"),
    ]
    for legs in flows:
        rules.check_legs(legs)
        assert sum(leg.amount for leg in legs) == 0


def test_check_legs_refuses_broken_transfers() -> None:
    a = AccountKey(AccountKind.BUYER_WALLET, uuid.uuid4(), "USD")
    b = AccountKey(AccountKind.BUYER_HELD, a.owner, "USD")
    eur = AccountKey(AccountKind.BUYER_HELD, a.owner, "EUR")
    for legs in (
        [Leg(a, 5)],
        [Leg(a, 5), Leg(b, -4)],
        [Leg(a, 0), Leg(b, 0)],
        [Leg(a, 5), Leg(a, -5)],
        [Leg(a, 5), Leg(eur, -5)],
    ):
        with pytest.raises(LedgerRuleError):
            rules.check_legs(legs)


def test_overdraft_only_counts_for_non_negative_kinds() -> None:
    wallet = AccountKey(AccountKind.BUYER_WALLET, uuid.uuid4(), "USD")
    payable = AccountKey(AccountKind.SELLER_PAYABLE, uuid.uuid4(), "USD")
    legs = [Leg(wallet, -10), Leg(payable, -10)]
    assert rules.overdrawn(legs, {wallet: 9, payable: 0}) == [wallet]
    assert rules.overdrawn(legs, {wallet: 10}) == []


def test_system_accounts_are_sharded_deterministically() -> None:
    user = uuid.uuid4()
    first = rules.system_account(AccountKind.TOPUP_CLEARING, "USD", user)
    assert first == rules.system_account(AccountKind.TOPUP_CLEARING, "USD", user)
    assert first.owner.int < rules.SYSTEM_SHARDS
    shards = {rules.system_account(AccountKind.PLATFORM_FEES, "USD", uuid.uuid4()).owner
              for _ in range(400)}
    assert len(shards) == rules.SYSTEM_SHARDS
    with pytest.raises(LedgerRuleError):
        rules.system_account(AccountKind.BUYER_WALLET, "USD", user)


def test_fingerprint_depends_on_kind_and_every_parameter() -> None:
    base = rules.fingerprint(rules.TransferKind.TOPUP, {"amount": 1, "currency": "USD"})
    assert base == rules.fingerprint(rules.TransferKind.TOPUP, {"currency": "USD", "amount": 1})
    assert base != rules.fingerprint(rules.TransferKind.TOPUP, {"amount": 2, "currency": "USD"})
    assert base != rules.fingerprint(rules.TransferKind.PAYOUT, {"amount": 1, "currency": "USD"})


def test_rules_module_is_pure() -> None:
    tree = ast.parse(Path(rules.__file__).read_text())
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom)
        else alias.name.split(".")[0]
        for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert imported <= {"__future__", "enum", "hashlib", "re", "uuid", "collections",
                        "dataclasses", "typing"}, imported


def test_refundable_is_what_was_captured_and_not_given_back() -> None:
    assert rules.refundable({"state": "held", "captured": 0, "refunded": 0}) == 0
    assert rules.refundable({"state": "captured", "captured": 1_000, "refunded": 300}) == 700
    assert rules.refundable({"state": "settled", "captured": 1_000, "refunded": 1_000}) == 0
    assert rules.refundable({"state": "released", "captured": 0, "refunded": 0}) == 0
