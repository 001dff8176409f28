"""Pure show rules: the show state machine, chat message checks. No I/O."""

from __future__ import annotations

import enum
import uuid
from typing import Any, Literal

from api.shows.errors import InvalidTransition
from core.errors import FieldError, ValidationFailed
from core.text import MESSAGE, first_refused


class ShowState(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


_NEXT = {ShowState.SCHEDULED: ShowState.LIVE, ShowState.LIVE: ShowState.ENDED}


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
