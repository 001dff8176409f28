"""The errors WHIP and WHEP clients see (problem+json codes, English and Arabic texts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from core.errors import AppError, Conflict, Forbidden, ServiceUnavailable


class BadSdp(AppError):
    code = "bad_sdp"
    status = 400
    titles: ClassVar[Mapping[str, str]] = {"en": "Malformed SDP offer", "ar": "عرض SDP غير سليم"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "The SDP offer could not be read: {reason}.",
        "ar": "تعذرت قراءة عرض SDP: {reason}.",
    }


class UnsupportedOffer(AppError):
    code = "unsupported_offer"
    status = 422
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Offer cannot be served", "ar": "لا يمكن خدمة العرض",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "The server cannot serve this offer: {reason}.",
        "ar": "لا يستطيع الخادم خدمة هذا العرض: {reason}.",
    }


class NoCommonCodec(UnsupportedOffer):
    code = "no_common_codec"
    titles: ClassVar[Mapping[str, str]] = {"en": "No common codec", "ar": "لا يوجد ترميز مشترك"}


class ShowNotLive(Conflict):
    code = "show_not_live"
    titles: ClassVar[Mapping[str, str]] = {"en": "Show not live", "ar": "العرض ليس مباشرًا"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "This show has no live video now.",
        "ar": "لا يوجد بث مباشر لهذا العرض الآن.",
    }


class ShowEnded(Conflict):
    code = "show_ended"
    titles: ClassVar[Mapping[str, str]] = {"en": "Show ended", "ar": "انتهى العرض"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "This show has ended; create a new one to go live again.",
        "ar": "انتهى هذا العرض؛ أنشئ عرضًا جديدًا للبث مجددًا.",
    }


class NotTheSeller(Forbidden):
    code = "not_show_seller"
    titles: ClassVar[Mapping[str, str]] = {"en": "Not the show's seller", "ar": "لست بائع العرض"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "Only the show's seller may publish its video.",
        "ar": "يمكن لبائع العرض فقط بث الفيديو الخاص به.",
    }


class TooManySessions(ServiceUnavailable):
    code = "too_many_sessions"
    titles: ClassVar[Mapping[str, str]] = {"en": "Too many sessions", "ar": "جلسات كثيرة جدًا"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "The {what} limit ({limit}) is reached; retry later.",
        "ar": "تم بلوغ حد {what} ({limit})؛ أعد المحاولة لاحقًا.",
    }


class HandshakesBusy(ServiceUnavailable):
    code = "viewer_joins_busy"
    titles: ClassVar[Mapping[str, str]] = {"en": "Too many viewers joining",
                                        "ar": "عدد كبير من المشاهدين ينضمون الآن"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "{pending} viewers are joining this server right now (limit {limit}); "
              "retry in a moment.",
        "ar": "ينضم {pending} مشاهدًا إلى هذا الخادم الآن (الحد {limit})؛ أعد المحاولة بعد قليل.",
    }


class CodecChanged(Conflict):
    code = "codec_changed"
    titles: ClassVar[Mapping[str, str]] = {"en": "Codec changed", "ar": "تغير الترميز"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "A publisher resuming a show must send the codec it started with ({codec}).",
        "ar": "يجب أن يرسل الناشر الذي يستأنف العرض الترميز نفسه ({codec}).",
    }
