"""Show errors: state changes a show refuses, and who the chat refuses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from core.errors import AppError, Conflict, Forbidden


class InvalidTransition(Conflict):
    code = "invalid_transition"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Invalid state change",
        "ar": "تغيير حالة غير صالح",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "A {state} show cannot be {action}.",
        "ar": "لا يمكن {action} عرض حالته {state}.",
    }


class Muted(AppError):
    code = "muted"
    status = 403
    titles: ClassVar[Mapping[str, str]] = {"en": "Muted", "ar": "مكتوم"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "You are muted in this show's chat.",
        "ar": "تم كتمك في دردشة هذا العرض.",
    }


class Banned(Forbidden):
    code = "banned"
    titles: ClassVar[Mapping[str, str]] = {"en": "Banned", "ar": "محظور"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "You are banned from this show's chat.",
        "ar": "تم حظرك من دردشة هذا العرض.",
    }


class ShowNotLive(Conflict):
    code = "show_not_live"
    titles: ClassVar[Mapping[str, str]] = {"en": "Show not live", "ar": "العرض ليس مباشرًا"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "Chat is open while the show is scheduled or live.",
        "ar": "الدردشة متاحة عندما يكون العرض مجدولًا أو مباشرًا.",
    }
