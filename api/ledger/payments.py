"""Payment providers that fund wallet top-ups (`PAYMENT_PROVIDER`).

`demo` accepts every charge at once (demo/dev only; settings refuse it in prod). `none` means no
provider: top-ups answer 503 `payment_provider_unavailable`. A real card provider plugs in here;
it would need Brandur-style atomic phases (charge, then record) with the provider's own
idempotency key set to our transfer id, because its call cannot share our database transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Charge:
    provider: str
    reference: str


class PaymentProvider(Protocol):
    name: str

    async def charge(
        self, *, user_id: uuid.UUID, amount: int, currency: str, idempotency_id: uuid.UUID
    ) -> Charge:
        """Charge the user's payment method; raise an AppError if it is declined."""
        ...


class DemoProvider:
    name = "demo"

    async def charge(
        self, *, user_id: uuid.UUID, amount: int, currency: str, idempotency_id: uuid.UUID
    ) -> Charge:
        return Charge(self.name, f"demo_{idempotency_id.hex}")


def provider_for(name: str) -> PaymentProvider | None:
    if name == "demo":
        return DemoProvider()
    return None
