"""Wallet ledger: double-entry, append-only, in PostgreSQL. Other domains use `service` (one
transfer in the caller's transaction); stand-alone transfers at volume go through `batcher`
(group commit: many transfers per transaction, each caller answered after its commit)."""

from api.ledger.errors import InsufficientFunds, RefundExceedsCaptured

__all__ = ["InsufficientFunds", "RefundExceedsCaptured"]
