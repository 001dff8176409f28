"""One error root with stable codes, shared by HTTP and websocket surfaces.

Every failure a client can see is an `AppError`. Its `code` is a stable snake_case string that
clients branch on; `status` is the HTTP status; `temporary` tells a client whether retrying the
same request later may succeed. The same error renders as RFC 9457 problem+json over HTTP
(`api.problems`) and as `{"code", "message", "temporary"}` in websocket error frames.

People-facing text is per language: each class carries `titles` and `details` templates keyed by
language tag (`en` is required, `ar` is supported); `params` fill the templates. Every subclass
gives them in `AppError`'s form, `titles: ClassVar[Mapping[str, str]] = {"en": ..., "ar": ...}`
(tests/test_layout.py checks).

The tree (domain packages add their own subclasses, in their `errors.py` or beside the code
that raises them):

    AppError                      500 internal_error
    ├── ValidationFailed          422 validation_failed (+ errors: [{field, message}])
    ├── MalformedBody             400 malformed_body
    ├── PayloadTooLarge           413 payload_too_large
    ├── UnsupportedMediaType      415 unsupported_media_type
    ├── Unauthorized              401 unauthorized
    │   ├── TokenExpired          401 token_expired
    │   ├── TokenInvalid          401 token_invalid
    │   └── InvalidCredentials    401 invalid_credentials
    ├── Forbidden                 403 forbidden
    ├── NotFound                  404 not_found
    ├── MethodNotAllowed          405 method_not_allowed
    ├── Conflict                  409 conflict
    │   └── IdempotencyKeyReused  409 idempotency_key_reused
    ├── RateLimited               429 rate_limited (temporary, Retry-After)
    └── ServiceUnavailable        503 service_unavailable (temporary)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

SUPPORTED_LANGUAGES = ("en", "ar")


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid input field: `field` is a dotted path (`variants.0.price`)."""

    field: str
    message: str


class AppError(Exception):
    """Root of every client-visible error. Subclasses set the class attributes."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    temporary: ClassVar[bool] = False
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Internal server error",
        "ar": "خطأ داخلي في الخادم",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "The server could not complete the request.",
        "ar": "تعذّر على الخادم إتمام الطلب.",
    }

    def __init__(
        self,
        detail: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.params: Mapping[str, Any] = params or {}
        self.extra: Mapping[str, Any] = extra or {}
        self.headers: Mapping[str, str] = headers or {}
        self._detail = detail
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The English detail: for logs and websocket error frames."""
        return self.detail_for("en")

    def title_for(self, lang: str) -> str:
        return self.titles.get(lang) or self.titles["en"]

    def detail_for(self, lang: str) -> str:
        """The detail in `lang`: an explicit English detail wins for English; templates fill in
        other languages, falling back to English."""
        if lang == "en" and self._detail is not None:
            return self._detail
        template = self.details.get(lang)
        if template is None:
            return self._detail if self._detail is not None else self.details["en"].format_map(
                _Safe(self.params)
            )
        return template.format_map(_Safe(self.params))

    def frame(self) -> dict[str, Any]:
        """The websocket error payload."""
        return {"code": self.code, "message": self.message, "temporary": self.temporary}


class _Safe(dict[str, Any]):
    """`str.format_map` mapping that leaves unknown placeholders visible instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class ValidationFailed(AppError):
    code = "validation_failed"
    status = 422
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Validation failed",
        "ar": "فشل التحقق من البيانات",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "One or more fields are invalid.",
        "ar": "حقل واحد أو أكثر غير صالح.",
    }

    def __init__(self, errors: Sequence[FieldError], detail: str | None = None) -> None:
        self.errors = list(errors)
        super().__init__(
            detail,
            extra={"errors": [{"field": e.field, "message": e.message} for e in self.errors]},
        )


class MalformedBody(AppError):
    code = "malformed_body"
    status = 400
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Malformed request body",
        "ar": "جسم الطلب غير سليم",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "The request body is not valid JSON.",
        "ar": "جسم الطلب ليس JSON صالحًا.",
    }


class PayloadTooLarge(AppError):
    code = "payload_too_large"
    status = 413
    titles: ClassVar[Mapping[str, str]] = {"en": "Payload too large", "ar": "حجم الطلب كبير جدًا"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "The request body exceeds {limit} bytes.",
        "ar": "جسم الطلب يتجاوز {limit} بايت.",
    }


class UnsupportedMediaType(AppError):
    code = "unsupported_media_type"
    status = 415
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Unsupported media type",
        "ar": "نوع محتوى غير مدعوم",
    }
    details: ClassVar[Mapping[str, str]] = {"en": "Send {expected}.", "ar": "أرسل {expected}."}


class Unauthorized(AppError):
    code = "unauthorized"
    status = 401
    titles: ClassVar[Mapping[str, str]] = {"en": "Authentication required", "ar": "المصادقة مطلوبة"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "Send a valid access token as 'Authorization: Bearer <token>'.",
        "ar": "أرسل رمز وصول صالحًا في ترويسة Authorization.",
    }

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        headers = {"WWW-Authenticate": 'Bearer realm="souk"'}
        super().__init__(detail, headers=headers, **kwargs)


class TokenExpired(Unauthorized):
    code = "token_expired"
    titles: ClassVar[Mapping[str, str]] = {"en": "Token expired", "ar": "انتهت صلاحية الرمز"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "The token has expired.",
        "ar": "انتهت صلاحية الرمز.",
    }


class TokenInvalid(Unauthorized):
    code = "token_invalid"
    titles: ClassVar[Mapping[str, str]] = {"en": "Invalid token", "ar": "رمز غير صالح"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "The token is not valid.",
        "ar": "الرمز غير صالح.",
    }


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Invalid credentials",
        "ar": "بيانات الدخول غير صحيحة",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "The email or password is wrong.",
        "ar": "البريد الإلكتروني أو كلمة المرور غير صحيحة.",
    }


class Forbidden(AppError):
    code = "forbidden"
    status = 403
    titles: ClassVar[Mapping[str, str]] = {"en": "Forbidden", "ar": "غير مسموح"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "You are not allowed to do this.",
        "ar": "لا يُسمح لك بهذا الإجراء.",
    }


class NotFound(AppError):
    code = "not_found"
    status = 404
    titles: ClassVar[Mapping[str, str]] = {"en": "Not found", "ar": "غير موجود"}
    details: ClassVar[Mapping[str, str]] = {"en": "Nothing exists here.", "ar": "لا يوجد شيء هنا."}


class MethodNotAllowed(AppError):
    code = "method_not_allowed"
    status = 405
    titles: ClassVar[Mapping[str, str]] = {"en": "Method not allowed", "ar": "الطريقة غير مسموحة"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "This resource does not accept that method.",
        "ar": "هذا المورد لا يقبل هذه الطريقة.",
    }


class Conflict(AppError):
    code = "conflict"
    status = 409
    titles: ClassVar[Mapping[str, str]] = {"en": "Conflict", "ar": "تعارض"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "The request conflicts with the current state.",
        "ar": "الطلب يتعارض مع الحالة الحالية.",
    }


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Idempotency key reused",
        "ar": "أُعيد استخدام مفتاح عدم التكرار",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "This Idempotency-Key was used with a different request.",
        "ar": "استُخدم مفتاح Idempotency-Key هذا مع طلب مختلف.",
    }


class RateLimited(AppError):
    code = "rate_limited"
    status = 429
    temporary = True
    titles: ClassVar[Mapping[str, str]] = {"en": "Too many requests", "ar": "طلبات كثيرة جدًا"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "Slow down; retry after {retry_after} seconds.",
        "ar": "تمهّل؛ أعد المحاولة بعد {retry_after} ثانية.",
    }

    def __init__(self, retry_after_s: float, detail: str | None = None) -> None:
        seconds = max(1, int(-(-retry_after_s // 1)))
        self.retry_after_s = seconds
        super().__init__(
            detail,
            params={"retry_after": seconds},
            headers={"Retry-After": str(seconds)},
            extra={"retry_after": seconds},
        )


class ServiceUnavailable(AppError):
    code = "service_unavailable"
    status = 503
    temporary = True
    titles: ClassVar[Mapping[str, str]] = {"en": "Service unavailable", "ar": "الخدمة غير متاحة"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "A dependency is unavailable; retry shortly.",
        "ar": "إحدى الخدمات غير متاحة؛ أعد المحاولة قريبًا.",
    }
