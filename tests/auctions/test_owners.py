"""What crosses between processes when bids are routed: errors keep their class and texts."""

from __future__ import annotations

import orjson

from auctions.errors import BidTooLow
from auctions.owners import decode_error, encode_error
from core.errors import AppError, RateLimited, ServiceUnavailable


def test_errors_cross_with_their_class_code_texts_and_extras() -> None:
    for original in (BidTooLow(1_500), RateLimited(7), ServiceUnavailable("owner busy")):
        wire = orjson.loads(orjson.dumps(encode_error(original)))
        copy = decode_error(wire)
        assert type(copy) is type(original)
        assert (copy.code, copy.message, copy.temporary) == (original.code, original.message,
                                                              original.temporary)
        assert dict(copy.extra) == dict(original.extra)
        assert dict(copy.headers) == dict(original.headers)
        assert copy.detail_for("ar") == original.detail_for("ar")


def test_unknown_codes_and_non_app_errors_become_service_unavailable() -> None:
    assert type(decode_error({"code": "no_such_code"})) is ServiceUnavailable
    assert encode_error(RuntimeError("boom"))["code"] == ServiceUnavailable.code
    assert isinstance(decode_error(encode_error(KeyError("x"))), AppError)
