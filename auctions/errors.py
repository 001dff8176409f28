"""Auction errors: stable codes shared by HTTP problem+json and websocket error frames.

    AppError
    ├── BidRejected (409 bid_rejected)           base of every refusal of a bid by the rules
    │   ├── BidTooLow (409 bid_too_low)
    │   ├── AuctionNotOpen (409 auction_not_open)
    │   ├── SellerCannotBid (403 seller_cannot_bid)
    │   └── BuyNowUnavailable (409 buy_now_unavailable)
    ├── InsufficientFunds (402 insufficient_funds)
    ├── AuctionNotFound (404 not_found)
    ├── InvalidAuctionAction (409 invalid_transition)
    └── BidQueueFull (503 service_unavailable, temporary)

Only this module and `core.errors` are imported by the pure engine; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from core.errors import AppError, NotFound, ServiceUnavailable


class BidRejected(AppError):
    """A bid refused by the auction rules (the audit records `code`)."""

    code = "bid_rejected"
    status = 409
    titles: ClassVar[Mapping[str, str]] = {"en": "Bid rejected", "ar": "رُفضت المزايدة"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "The bid was not accepted.",
        "ar": "لم تُقبل المزايدة.",
    }


class BidTooLow(BidRejected):
    code = "bid_too_low"
    titles: ClassVar[Mapping[str, str]] = {"en": "Bid too low", "ar": "المزايدة منخفضة جدًا"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "The lowest acceptable bid is {min_bid}.",
        "ar": "أقل مزايدة مقبولة هي {min_bid}.",
    }

    def __init__(self, min_bid: int, detail: str | None = None) -> None:
        self.min_bid = min_bid
        super().__init__(detail, params={"min_bid": min_bid}, extra={"min_bid": min_bid})


class AuctionNotOpen(BidRejected):
    code = "auction_not_open"
    titles: ClassVar[Mapping[str, str]] = {"en": "Auction not open", "ar": "المزاد غير مفتوح"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "This auction is not accepting bids now.",
        "ar": "هذا المزاد لا يقبل المزايدات الآن.",
    }


class SellerCannotBid(BidRejected):
    code = "seller_cannot_bid"
    status = 403
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Sellers cannot bid",
        "ar": "لا يمكن للبائع المزايدة",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "A seller cannot bid on their own auction.",
        "ar": "لا يمكن للبائع المزايدة على مزاده.",
    }


class BuyNowUnavailable(BidRejected):
    code = "buy_now_unavailable"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Buy it now unavailable",
        "ar": "الشراء الفوري غير متاح",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "Buy it now is not offered on this auction any more.",
        "ar": "لم يعد الشراء الفوري متاحًا في هذا المزاد.",
    }


class InsufficientFunds(AppError):
    code = "insufficient_funds"
    status = 402
    titles: ClassVar[Mapping[str, str]] = {"en": "Insufficient funds", "ar": "الرصيد غير كافٍ"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "Your wallet does not hold enough to cover this bid.",
        "ar": "لا تكفي محفظتك لتغطية هذه المزايدة.",
    }


class AuctionNotFound(NotFound):
    titles: ClassVar[Mapping[str, str]] = {"en": "Auction not found", "ar": "المزاد غير موجود"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "No such auction.",
        "ar": "لا يوجد مزاد بهذا المعرّف.",
    }


class InvalidAuctionAction(AppError):
    code = "invalid_transition"
    status = 409
    titles: ClassVar[Mapping[str, str]] = {"en": "Invalid transition", "ar": "انتقال غير مسموح"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "The auction cannot do that in its current state.",
        "ar": "لا يمكن تنفيذ ذلك في حالة المزاد الحالية.",
    }


class BidQueueFull(ServiceUnavailable):
    code = "bids_overloaded"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Too many bids in flight",
        "ar": "مزايدات كثيرة قيد المعالجة",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "The auction is receiving more bids than it can record; retry shortly.",
        "ar": "يتلقى المزاد مزايدات أكثر مما يمكن تسجيله؛ أعد المحاولة قريبًا.",
    }
