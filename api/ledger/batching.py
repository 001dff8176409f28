"""Group commit for the ledger, the pure part: which transfers of a batch post, in order.

Many transfers from concurrent requests go to PostgreSQL as one batch (api.ledger.batcher does
the I/O, as TigerBeetle batches thousands of transfers per request). This module decides, given
the locked balances and the transfer ids already stored, what each request's outcome is, exactly
as if the requests had been posted one after another in arrival order:
- an id already stored (or accepted earlier in the batch) with the same kind and fingerprint is
  a replay; with other content, `reused`;
- a transfer that would push a non-negative account (wallet, held, escrow) below zero is
  refused (`insufficient_funds`) and changes nothing; later transfers see the balances without
  it;
- otherwise it posts: its entries carry the running `balance_after`, and every account ends at
  its final balance (one UPDATE per account per batch: a hot wallet is written once per batch,
  not once per transfer).
No I/O here; time is not involved.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from api.ledger.rules import NON_NEGATIVE, AccountKey, AccountKind, Leg, TransferKind, check_legs

BUYER_KINDS = (AccountKind.BUYER_WALLET, AccountKind.BUYER_HELD)


class Outcome(enum.StrEnum):
    POSTED = "posted"
    REPLAYED = "replayed"
    REUSED = "reused"  # the id is taken by a transfer with other content
    INSUFFICIENT_FUNDS = "insufficient_funds"


@dataclass(frozen=True, slots=True)
class Request:
    id: uuid.UUID
    kind: TransferKind
    digest: bytes
    legs: tuple[Leg, ...]
    order_id: uuid.UUID | None = None
    reference_id: uuid.UUID | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_legs(self.legs)


@dataclass(frozen=True, slots=True)
class Entry:
    transfer_id: uuid.UUID
    account: AccountKey
    amount: int
    balance_after: int


@dataclass(frozen=True, slots=True)
class WalletNote:
    """A buyer's wallet after a posted transfer (the `wallet.changed` event)."""

    owner: uuid.UUID
    currency: str
    transfer_id: uuid.UUID
    kind: TransferKind
    available: int
    held: int


@dataclass
class Decision:
    outcomes: list[Outcome]
    posted: list[Request]
    entries: list[Entry]
    balances: dict[AccountKey, int]  # final balances of the accounts the posted legs touch
    notes: list[WalletNote]


def accounts_to_lock(requests: Sequence[Request]) -> tuple[list[AccountKey], list[AccountKey]]:
    """(the legs' accounts, the buyer accounts read for wallet events), each sorted. The
    wallet event of a buyer leg reports both the wallet and the held balance."""
    legs = {leg.account for r in requests for leg in r.legs}
    siblings = {AccountKey(kind, leg.account.owner, leg.account.currency)
                for r in requests for leg in r.legs if leg.account.kind in BUYER_KINDS
                for kind in BUYER_KINDS}
    return sorted(legs), sorted(siblings - legs)


def decide(
    requests: Sequence[Request],
    balances: Mapping[AccountKey, int],
    stored: Mapping[uuid.UUID, tuple[TransferKind, bytes]],
) -> Decision:
    """The outcome of each request, in order (see the module docstring)."""
    running = dict(balances)
    known = dict(stored)
    out = Decision([], [], [], {}, [])
    for r in requests:
        if r.id in known:
            same = known[r.id] == (r.kind, r.digest)
            out.outcomes.append(Outcome.REPLAYED if same else Outcome.REUSED)
            continue
        after = {leg.account: running.get(leg.account, 0) + leg.amount for leg in r.legs}
        if any(a.kind in NON_NEGATIVE and v < 0 for a, v in after.items()):
            out.outcomes.append(Outcome.INSUFFICIENT_FUNDS)
            continue
        running.update(after)
        known[r.id] = (r.kind, r.digest)
        out.outcomes.append(Outcome.POSTED)
        out.posted.append(r)
        out.entries.extend(Entry(r.id, leg.account, leg.amount, after[leg.account])
                           for leg in r.legs)
        out.balances.update(after)
        buyers = sorted({(leg.account.owner, leg.account.currency) for leg in r.legs
                         if leg.account.kind in BUYER_KINDS})
        out.notes.extend(WalletNote(
            owner, currency, r.id, r.kind,
            running.get(AccountKey(AccountKind.BUYER_WALLET, owner, currency), 0),
            running.get(AccountKey(AccountKind.BUYER_HELD, owner, currency), 0),
        ) for owner, currency in buyers)
    return out
