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

from core.errors import AppError, NotFound, ServiceUnavailable


def _t(en: str, ar: str) -> dict[str, str]:
    return {"en": en, "ar": ar}


class BidRejected(AppError):
    """A bid refused by the auction rules (the audit records `code`)."""

    code = "bid_rejected"
    status = 409
    titles = _t("Bid rejected", "رُفضت المزايدة")
    details = _t("The bid was not accepted.", "لم تُقبل المزايدة.")


class BidTooLow(BidRejected):
    code = "bid_too_low"
    titles = _t("Bid too low", "المزايدة منخفضة جدًا")
    details = _t(
        "The lowest acceptable bid is {min_bid}.",
        "أقل مزايدة مقبولة هي {min_bid}.",
    )

    def __init__(self, min_bid: int, detail: str | None = None) -> None:
        self.min_bid = min_bid
        super().__init__(detail, params={"min_bid": min_bid}, extra={"min_bid": min_bid})


class AuctionNotOpen(BidRejected):
    code = "auction_not_open"
    titles = _t("Auction not open", "المزاد غير مفتوح")
    details = _t(
        "This auction is not accepting bids now.",
        "هذا المزاد لا يقبل المزايدات الآن.",
    )


class SellerCannotBid(BidRejected):
    code = "seller_cannot_bid"
    status = 403
    titles = _t("Sellers cannot bid", "لا يمكن للبائع المزايدة")
    details = _t(
        "A seller cannot bid on their own auction.",
        "لا يمكن للبائع المزايدة على مزاده.",
    )


class BuyNowUnavailable(BidRejected):
    code = "buy_now_unavailable"
    titles = _t("Buy it now unavailable", "الشراء الفوري غير متاح")
    details = _t(
        "Buy it now is not offered on this auction any more.",
        "لم يعد الشراء الفوري متاحًا في هذا المزاد.",
    )


class InsufficientFunds(AppError):
    code = "insufficient_funds"
    status = 402
    titles = _t("Insufficient funds", "الرصيد غير كافٍ")
    details = _t(
        "Your wallet does not hold enough to cover this bid.",
        "لا تكفي محفظتك لتغطية هذه المزايدة.",
    )


class AuctionNotFound(NotFound):
    titles = _t("Auction not found", "المزاد غير موجود")
    details = _t("No such auction.", "لا يوجد مزاد بهذا المعرّف.")


class InvalidAuctionAction(AppError):
    code = "invalid_transition"
    status = 409
    titles = _t("Invalid transition", "انتقال غير مسموح")
    details = _t(
        "The auction cannot do that in its current state.",
        "لا يمكن تنفيذ ذلك في حالة المزاد الحالية.",
    )


class BidQueueFull(ServiceUnavailable):
    code = "bids_overloaded"
    titles = _t("Too many bids in flight", "مزايدات كثيرة قيد المعالجة")
    details = _t(
        "The auction is receiving more bids than it can record; retry shortly.",
        "يتلقى المزاد مزايدات أكثر مما يمكن تسجيله؛ أعد المحاولة قريبًا.",
    )
