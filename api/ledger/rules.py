"""Ledger rules, pure: account kinds, sign convention, the legs of every flow, fees in basis
points, and the invariants a set of legs must satisfy. No I/O here.

Sign convention: an account's balance is the sum of its entries' signed amounts. A positive
balance is money the platform holds *for* that account's owner (a buyer's spendable funds, a
seller's payable, collected fees); the outside world appears as clearing accounts that go
negative when money comes in (top-up clearing) — so every transfer's legs sum to zero and the sum
of all balances per currency is always zero.

System accounts (top-up clearing, payout clearing, platform fees, adjustments) are sharded
(`SYSTEM_SHARDS` rows per kind and currency, chosen by a hash of the user or order id) so one hot
row does not cap throughput (one hot row tops out near 2k updates/s on PostgreSQL, see the research
note section 7.2). Their totals are the sum over shards.
"""

from __future__ import annotations

import enum
import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SYSTEM_SHARDS = 8
MAX_AMOUNT = 100_000_000_00  # one transfer moves at most 100 million major units
MAX_REASON = 500
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
BPS_DENOMINATOR = 10_000


class AccountKind(enum.StrEnum):
    BUYER_WALLET = "buyer_wallet"  # owner: user; spendable
    BUYER_HELD = "buyer_held"  # owner: user; held for unpaid orders (per-order amounts in holds)
    SELLER_PAYABLE = "seller_payable"  # owner: seller; owed to the seller
    PLATFORM_FEES = "platform_fees"  # system, sharded
    ORDER_ESCROW = "order_escrow"  # owner: order; captured, not yet settled
    TOPUP_CLEARING = "topup_clearing"  # system, sharded; negative = money received from PSPs
    PAYOUT_CLEARING = "payout_clearing"  # system, sharded; positive = sent to banks
    ADJUSTMENTS = "adjustments"  # system, sharded; counterpart of admin corrections


# The database refuses a negative balance on these (CHECK constraint in 0100_ledger.sql).
NON_NEGATIVE = frozenset(
    {AccountKind.BUYER_WALLET, AccountKind.BUYER_HELD, AccountKind.ORDER_ESCROW}
)
SYSTEM_KINDS = frozenset(
    {
        AccountKind.PLATFORM_FEES,
        AccountKind.TOPUP_CLEARING,
        AccountKind.PAYOUT_CLEARING,
        AccountKind.ADJUSTMENTS,
    }
)


class TransferKind(enum.StrEnum):
    TOPUP = "topup"
    HOLD = "hold"
    RELEASE = "release"
    CAPTURE = "capture"
    REFUND = "refund"
    SETTLE = "settle"
    PAYOUT = "payout"
    PAYOUT_REVERSAL = "payout_reversal"
    ADJUSTMENT = "adjustment"


@dataclass(frozen=True, slots=True, order=True)
class AccountKey:
    """Identifies one ledger account: kind, owner (user, order or shard id) and currency."""

    kind: AccountKind
    owner: uuid.UUID
    currency: str


@dataclass(frozen=True, slots=True)
class Leg:
    account: AccountKey
    amount: int  # signed cents; never zero


class LedgerRuleError(ValueError):
    """Legs or inputs break a ledger rule (a programming error or invalid input)."""


def system_account(kind: AccountKind, currency: str, spread_by: uuid.UUID) -> AccountKey:
    """The shard of system account `kind` that `spread_by` (a user or order id) maps to."""
    if kind not in SYSTEM_KINDS:
        raise LedgerRuleError(f"{kind} is not a system account kind")
    digest = hashlib.blake2b(spread_by.bytes, digest_size=2).digest()
    shard = int.from_bytes(digest, "big") % SYSTEM_SHARDS
    return AccountKey(kind, uuid.UUID(int=shard), currency)


def user_account(kind: AccountKind, owner: uuid.UUID, currency: str) -> AccountKey:
    if kind in SYSTEM_KINDS:
        raise LedgerRuleError(f"{kind} is a system account kind")
    return AccountKey(kind, owner, currency)


def check_amount(amount: object, *, allow_negative: bool = False) -> int:
    """`amount` as validated cents: an int (not bool), non-zero, |amount| <= MAX_AMOUNT, and
    positive unless `allow_negative`. Raises LedgerRuleError."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise LedgerRuleError("amount must be an integer number of cents")
    if amount == 0 or abs(amount) > MAX_AMOUNT:
        raise LedgerRuleError(f"amount must be non-zero and at most {MAX_AMOUNT} in size")
    if amount < 0 and not allow_negative:
        raise LedgerRuleError("amount must be positive")
    return amount


def check_currency(currency: object) -> str:
    if not isinstance(currency, str) or not CURRENCY_RE.match(currency):
        raise LedgerRuleError("currency must be an ISO 4217 code such as USD")
    return currency


def fee_for(amount: int, bps: int) -> int:
    """The platform fee on `amount` at `bps` basis points, rounded half up, never more than
    `amount`."""
    if amount < 0 or not 0 <= bps <= BPS_DENOMINATOR:
        raise LedgerRuleError("fee needs a non-negative amount and 0..10000 bps")
    return min(amount, (amount * bps + BPS_DENOMINATOR // 2) // BPS_DENOMINATOR)


def two_legs(debit: AccountKey, credit: AccountKey, amount: int) -> list[Leg]:
    """Move `amount` (> 0) from `debit` to `credit`."""
    return [Leg(debit, -amount), Leg(credit, amount)]


def topup_legs(user: uuid.UUID, amount: int, currency: str) -> list[Leg]:
    return two_legs(
        system_account(AccountKind.TOPUP_CLEARING, currency, user),
        user_account(AccountKind.BUYER_WALLET, user, currency),
        amount,
    )


def hold_legs(buyer: uuid.UUID, amount: int, currency: str) -> list[Leg]:
    return two_legs(
        user_account(AccountKind.BUYER_WALLET, buyer, currency),
        user_account(AccountKind.BUYER_HELD, buyer, currency),
        amount,
    )


def release_legs(buyer: uuid.UUID, amount: int, currency: str) -> list[Leg]:
    return two_legs(
        user_account(AccountKind.BUYER_HELD, buyer, currency),
        user_account(AccountKind.BUYER_WALLET, buyer, currency),
        amount,
    )


def capture_legs(buyer: uuid.UUID, order: uuid.UUID, amount: int, currency: str) -> list[Leg]:
    return two_legs(
        user_account(AccountKind.BUYER_HELD, buyer, currency),
        user_account(AccountKind.ORDER_ESCROW, order, currency),
        amount,
    )


def settle_legs(
    order: uuid.UUID, seller: uuid.UUID, amount: int, fee: int, currency: str
) -> list[Leg]:
    """Escrow → seller payable (amount - fee) + platform fees (fee)."""
    if not 0 <= fee <= amount:
        raise LedgerRuleError("fee must be between 0 and the settled amount")
    legs = [Leg(user_account(AccountKind.ORDER_ESCROW, order, currency), -amount)]
    if amount - fee:
        legs.append(Leg(user_account(AccountKind.SELLER_PAYABLE, seller, currency), amount - fee))
    if fee:
        legs.append(Leg(system_account(AccountKind.PLATFORM_FEES, currency, order), fee))
    return legs


def refund_from_escrow_legs(
    order: uuid.UUID, buyer: uuid.UUID, amount: int, currency: str
) -> list[Leg]:
    return two_legs(
        user_account(AccountKind.ORDER_ESCROW, order, currency),
        user_account(AccountKind.BUYER_WALLET, buyer, currency),
        amount,
    )


def refundable(funds: Mapping[str, Any]) -> int:
    """What an order's funds record can still give back: captured minus refunded, once the
    money was captured (0 before). Also what a settlement pays out."""
    if funds["state"] not in ("captured", "settled"):
        return 0
    return int(funds["captured"] - funds["refunded"])


def fee_share_of_refund(
    *, settled: int, fee: int, refunded_before: int, amount: int
) -> int:
    """The part of a post-settlement refund taken back from platform fees.

    Computed cumulatively (fee share of everything refunded so far minus what was already taken
    back), so a full refund returns exactly the whole fee and partial refunds never overshoot."""
    if not 0 < amount <= settled - refunded_before or not 0 <= fee <= settled:
        raise LedgerRuleError("refund outside the settled amount")
    total_after = (refunded_before + amount) * fee // settled
    total_before = refunded_before * fee // settled
    return total_after - total_before


def reversal_legs(
    order: uuid.UUID,
    seller: uuid.UUID,
    buyer: uuid.UUID,
    amount: int,
    fee_part: int,
    currency: str,
) -> list[Leg]:
    """Refund after settlement: seller payable (amount - fee_part) and platform fees (fee_part)
    back to the buyer's wallet. The seller payable may go negative (a debt netted from later
    sales); a buyer wallet never does."""
    legs = [Leg(user_account(AccountKind.BUYER_WALLET, buyer, currency), amount)]
    if amount - fee_part:
        legs.append(
            Leg(user_account(AccountKind.SELLER_PAYABLE, seller, currency), -(amount - fee_part))
        )
    if fee_part:
        legs.append(Leg(system_account(AccountKind.PLATFORM_FEES, currency, order), -fee_part))
    return legs


def payout_legs(seller: uuid.UUID, amount: int, currency: str) -> list[Leg]:
    return two_legs(
        user_account(AccountKind.SELLER_PAYABLE, seller, currency),
        system_account(AccountKind.PAYOUT_CLEARING, currency, seller),
        amount,
    )


def payout_reversal_legs(seller: uuid.UUID, amount: int, currency: str) -> list[Leg]:
    """A failed payout comes back from payout clearing to the seller's payable."""
    return two_legs(
        system_account(AccountKind.PAYOUT_CLEARING, currency, seller),
        user_account(AccountKind.SELLER_PAYABLE, seller, currency),
        amount,
    )


def adjustment_legs(user: uuid.UUID, amount: int, currency: str) -> list[Leg]:
    """Admin correction: signed `amount` into (or out of) the user's wallet."""
    wallet = user_account(AccountKind.BUYER_WALLET, user, currency)
    other = system_account(AccountKind.ADJUSTMENTS, currency, user)
    return [Leg(wallet, amount), Leg(other, -amount)]


def check_legs(legs: Sequence[Leg]) -> None:
    """Every transfer: at least two legs, no zero leg, no account twice, sum zero per currency.
    Raises LedgerRuleError."""
    if len(legs) < 2:
        raise LedgerRuleError("a transfer needs at least two legs")
    seen: set[AccountKey] = set()
    sums: dict[str, int] = {}
    for leg in legs:
        if leg.amount == 0:
            raise LedgerRuleError("a leg never moves zero")
        if leg.account in seen:
            raise LedgerRuleError("an account appears twice in one transfer")
        seen.add(leg.account)
        sums[leg.account.currency] = sums.get(leg.account.currency, 0) + leg.amount
    if any(sums.values()):
        raise LedgerRuleError("legs do not sum to zero per currency")


def overdrawn(
    legs: Iterable[Leg], balances: Mapping[AccountKey, int]
) -> list[AccountKey]:
    """The non-negative accounts that `legs` would push below zero, given current balances."""
    return [
        leg.account
        for leg in legs
        if leg.account.kind in NON_NEGATIVE and balances.get(leg.account, 0) + leg.amount < 0
    ]


def fingerprint(kind: TransferKind, params: Mapping[str, Any]) -> bytes:
    """A digest of a transfer request's content: a retry with the same transfer id must carry
    the same kind and parameters."""
    h = hashlib.sha256(kind.value.encode())
    for name in sorted(params):
        h.update(b"\x00" + name.encode() + b"=" + repr(params[name]).encode())
    return h.digest()
