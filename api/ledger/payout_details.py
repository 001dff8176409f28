"""Sellers' payout bank details: validated, encrypted at rest (api/ledger/crypto.py), returned
only masked. The plaintext exists only in memory during a request; it is never logged (the
Struct's repr is overridden) and never sent back whole."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

import asyncpg
import msgspec

from api.ledger.crypto import KeyBox, Sealed
from core.errors import FieldError, ValidationFailed
from core.http import Schema

_ACCOUNT_RE = re.compile(r"^[A-Z0-9]{4,34}$")
_ROUTING_RE = re.compile(r"^[A-Z0-9]{4,11}$")


class PayoutDetailsBody(Schema):
    account_holder: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    bank_name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    # IBAN or number: 4 to 34 letters and digits, spaces and hyphens ignored (`normalized`)
    account_number: Annotated[str, msgspec.Meta(min_length=4, max_length=42, extra_json_schema={
        "pattern": r"^[ -]*([A-Za-z0-9][ -]*){4,34}$"})]
    routing_code: Annotated[str, msgspec.Meta(min_length=4, max_length=14, extra_json_schema={
        "pattern": r"^ *([A-Za-z0-9] *){4,11}$"})] | None = None

    def __repr__(self) -> str:  # never print bank details, even in a traceback
        return "PayoutDetailsBody(<redacted>)"

    def normalized(self) -> PayoutDetailsBody:
        """Upper-case, spaces removed; raises ValidationFailed on malformed numbers."""
        account = re.sub(r"[\s-]", "", self.account_number).upper()
        routing = re.sub(r"\s", "", self.routing_code).upper() if self.routing_code else None
        errors = []
        if not _ACCOUNT_RE.match(account):
            errors.append(FieldError("account_number", "4 to 34 letters and digits"))
        if routing is not None and not _ROUTING_RE.match(routing):
            errors.append(FieldError("routing_code", "4 to 11 letters and digits"))
        if not self.account_holder.strip() or not self.bank_name.strip():
            errors.append(FieldError("account_holder", "must not be blank"))
        if errors:
            raise ValidationFailed(errors)
        return PayoutDetailsBody(
            account_holder=self.account_holder.strip(),
            bank_name=self.bank_name.strip(),
            account_number=account,
            routing_code=routing,
        )


class PayoutDetailsView(msgspec.Struct, kw_only=True):
    account_holder: str
    bank_name: str
    account_number: str  # masked: only the last four characters
    routing_code: str | None  # masked: only the first four (the bank's public code)
    updated_at: str


def mask_tail(value: str, keep: int = 4) -> str:
    return "•" * max(0, len(value) - keep) + value[-keep:]


def mask_head(value: str, keep: int = 4) -> str:
    return value[:keep] + "•" * max(0, len(value) - keep)


def _associated(seller_id: uuid.UUID) -> bytes:
    return b"souk.payout-details.v1:" + seller_id.bytes


async def save(
    conn: asyncpg.Connection | asyncpg.Pool,
    box: KeyBox,
    seller_id: uuid.UUID,
    details: PayoutDetailsBody,
) -> datetime:
    sealed = box.seal(msgspec.json.encode(details), associated=_associated(seller_id))
    updated: datetime = await conn.fetchval(
        """INSERT INTO seller_payout_details (seller_id, kid, nonce, ciphertext)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (seller_id) DO UPDATE SET kid = EXCLUDED.kid, nonce = EXCLUDED.nonce,
               ciphertext = EXCLUDED.ciphertext, updated_at = now()
           RETURNING updated_at""",
        seller_id,
        sealed.kid,
        sealed.nonce,
        sealed.ciphertext,
    )
    return updated


async def load(
    conn: asyncpg.Connection | asyncpg.Pool, box: KeyBox, seller_id: uuid.UUID
) -> tuple[PayoutDetailsBody, datetime] | None:
    """The decrypted details, or None. Raises crypto.DecryptionFailed if the row was tampered
    with or its key is gone."""
    row = await conn.fetchrow(
        "SELECT kid, nonce, ciphertext, updated_at FROM seller_payout_details WHERE seller_id = $1",
        seller_id,
    )
    if row is None:
        return None
    sealed = Sealed(row["kid"], bytes(row["nonce"]), bytes(row["ciphertext"]))
    plain = box.open(sealed, associated=_associated(seller_id))
    return msgspec.json.decode(plain, type=PayoutDetailsBody), row["updated_at"]


async def exists(conn: asyncpg.Connection | asyncpg.Pool, seller_id: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT true FROM seller_payout_details WHERE seller_id = $1", seller_id
        )
    )


async def rotate_all(conn: asyncpg.Connection, box: KeyBox, *, batch: int = 500) -> int:
    """Re-encrypt rows sealed with a key other than the active one; returns how many. Run after
    making a new key active; afterwards the old key can be removed from ENCRYPTION_KEYS."""
    rows = await conn.fetch(
        "SELECT seller_id FROM seller_payout_details WHERE kid <> $1 LIMIT $2 FOR UPDATE",
        box.active_kid,
        batch,
    )
    for row in rows:
        loaded = await load(conn, box, row["seller_id"])
        if loaded is not None:
            await save(conn, box, row["seller_id"], loaded[0])
    return len(rows)


def view(details: PayoutDetailsBody, updated_at: datetime) -> PayoutDetailsView:
    return PayoutDetailsView(
        account_holder=details.account_holder,
        bank_name=details.bank_name,
        account_number=mask_tail(details.account_number),
        routing_code=mask_head(details.routing_code) if details.routing_code else None,
        updated_at=updated_at.isoformat().replace("+00:00", "Z"),
    )
