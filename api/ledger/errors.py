"""Ledger errors: stable codes shared by the service functions and the HTTP routes."""

# Per-language texts are class-level constants, as in core.errors (read-only by convention).

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from core.errors import AppError, Conflict, ServiceUnavailable, ValidationFailed


class InsufficientFunds(AppError):
    """The wallet (or seller payable) does not hold enough for the debit."""

    code = "insufficient_funds"
    status = 402
    titles: ClassVar[Mapping[str, str]] = {"en": "Insufficient funds", "ar": "الرصيد غير كافٍ"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "The balance is too low for this amount.",
        "ar": "الرصيد أقل من هذا المبلغ.",
    }


class RefundExceedsCaptured(Conflict):
    """A refund larger than what was captured for the order minus what was already refunded."""

    code = "refund_exceeds_captured"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Refund exceeds captured amount",
        "ar": "المبلغ المسترد يتجاوز المبلغ المحصّل",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "At most {refundable} can still be refunded for this order.",
        "ar": "يمكن استرداد {refundable} على الأكثر لهذا الطلب.",
    }


class HoldConflict(Conflict):
    """The order's hold is not in a state that allows this operation."""

    code = "hold_conflict"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Order funds conflict",
        "ar": "تعارض في أموال الطلب",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "The order's funds are {state}; this operation is not allowed.",
        "ar": "أموال الطلب في حالة {state}؛ هذه العملية غير مسموحة.",
    }


class PayoutNotPending(Conflict):
    """The payout already resolved (paid or failed), or does not exist."""

    code = "payout_not_pending"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Payout not pending",
        "ar": "الصرف ليس قيد الانتظار",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "The payout is {state}; it can no longer change.",
        "ar": "الصرف في حالة {state}؛ لم يعد بالإمكان تغييره.",
    }


class UnknownOrderFunds(Conflict):
    """No hold was ever placed for the order."""

    code = "order_funds_unknown"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "No funds for this order",
        "ar": "لا أموال لهذا الطلب",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "No hold was placed for this order.",
        "ar": "لم يُحجز أي مبلغ لهذا الطلب.",
    }


class InvalidAmount(ValidationFailed):
    """An amount or currency outside the accepted range (raised by the service functions)."""


class PaymentProviderUnavailable(ServiceUnavailable):
    code = "payment_provider_unavailable"
    titles: ClassVar[Mapping[str, str]] = {"en": "Payments unavailable", "ar": "الدفع غير متاح"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "No payment provider is configured on this server; top-ups are unavailable.",
        "ar": "لا يوجد مزوّد دفع مهيّأ على هذا الخادم؛ الشحن غير متاح.",
    }


class EncryptionUnavailable(ServiceUnavailable):
    code = "encryption_unavailable"
    temporary = False
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Encryption keys missing",
        "ar": "مفاتيح التشفير غير مهيّأة",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "This server has no encryption keys configured; payout details cannot be stored.",
        "ar": "لا توجد مفاتيح تشفير على هذا الخادم؛ لا يمكن حفظ بيانات الصرف.",
    }


class PayoutDetailsUnreadable(AppError):
    """Stored payout details failed authentication (tampered) or their key was removed."""

    code = "payout_details_unreadable"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Payout details unreadable",
        "ar": "تعذّرت قراءة بيانات الصرف",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "The stored payout details cannot be decrypted; set them again.",
        "ar": "تعذّر فك تشفير بيانات الصرف المحفوظة؛ أدخلها من جديد.",
    }
