"""Pure show rules: request bodies, the show state machine, chat message checks. No I/O."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from core.errors import AppError, Conflict, FieldError, Forbidden, ValidationFailed
from core.http import Schema
from core.text import MESSAGE, first_refused

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ShowState(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


_NEXT = {ShowState.SCHEDULED: ShowState.LIVE, ShowState.LIVE: ShowState.ENDED}


class InvalidTransition(Conflict):
    code = "invalid_transition"
    titles: ClassVar[dict[str, str]] = {
        "en": "Invalid state change",
        "ar": "تغيير حالة غير صالح",
    }
    details: ClassVar[dict[str, str]] = {
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
    titles: ClassVar[dict[str, str]] = {"en": "Banned", "ar": "محظور"}
    details: ClassVar[dict[str, str]] = {
        "en": "You are banned from this show's chat.",
        "ar": "تم حظرك من دردشة هذا العرض.",
    }


class ShowNotLive(Conflict):
    code = "show_not_live"
    titles: ClassVar[dict[str, str]] = {"en": "Show not live", "ar": "العرض ليس مباشرًا"}
    details: ClassVar[dict[str, str]] = {
        "en": "Chat is open while the show is scheduled or live.",
        "ar": "الدردشة متاحة عندما يكون العرض مجدولًا أو مباشرًا.",
    }


class CreateShow(Schema):
    title: Title
    starts_at: datetime | None = None


class Restriction(Schema):
    kind: Literal["mute", "ban"]


class ShowView(msgspec.Struct):
    id: str
    seller_id: str
    title: str
    state: str
    starts_at: str | None
    started_at: str | None
    ended_at: str | None
    created_at: str


class ShowList(msgspec.Struct):
    items: list[ShowView]


class Viewers(msgspec.Struct):
    count: int
    chatters: list[str]


def next_state(current: ShowState, action: Literal["start", "end"]) -> ShowState:
    """The state after `action`; raises InvalidTransition."""
    target = ShowState.LIVE if action == "start" else ShowState.ENDED
    if _NEXT.get(current) is not target:
        raise InvalidTransition(params={"state": current.value, "action": action + "ed"})
    return target


def chat_message(data: Any, *, user_id: uuid.UUID, max_chars: int, now_ms: int) -> dict[str, Any]:
    """The chat publication for a client's `data` (`{"text": str}`); the server stamps the
    author and time. Raises ValidationFailed."""
    if not isinstance(data, dict) or set(data) != {"text"} or not isinstance(data["text"], str):
        raise ValidationFailed([FieldError("data", 'must be {"text": string}')])
    text = data["text"].strip()
    refused = first_refused(text)
    if refused is not None:
        raise ValidationFailed([FieldError("data.text", MESSAGE.format(refused))])
    if not text:
        raise ValidationFailed([FieldError("data.text", "must not be empty")])
    if len(text) > max_chars:
        raise ValidationFailed([FieldError("data.text", f"at most {max_chars} characters")])
    return {"type": "chat", "user_id": str(user_id), "text": text, "ts": now_ms}
