"""Wallet ledger: double-entry, append-only, in PostgreSQL. Other domains use `service`."""

from api.ledger.errors import InsufficientFunds, RefundExceedsCaptured

__all__ = ["InsufficientFunds", "RefundExceedsCaptured"]
