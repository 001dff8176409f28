"""The websocket session as a pure state machine: parse commands, apply per-connection limits,
track auth and subscriptions. No I/O: the endpoint feeds it decoded frames and the current time
and performs what it decides.

Command frames (CONTRACT.md): `{"id": int, "op": str, ...}`. Every command gets exactly one
reply `{"id", "result"}` or `{"id", "error": {"code", "message", "temporary"}}`; a frame that
is not even an object with an integer id gets `{"error": ...}` without id.

Call contract: for each frame, `session.admit(now)` first (rate limit; it may say to close the
connection for a flood), then `parse_command(obj, ...)`, then the session guard for the op
(`check_auth`, `check_subscribe`, `check_unsubscribe`), and after the I/O succeeded the matching
`add_subscription` / `remove_subscription` / `authenticated`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from typing import Any, ClassVar

from core.errors import AppError, Conflict, RateLimited, Unauthorized
from realtime.channels import (
    ANONYMOUS,
    BadChannel,
    Channel,
    ChannelForbidden,
    Subject,
    parse_channel,
)

__all__ = ["ChannelForbidden"]  # raised by the session's checks; defined with the channel rules

MAX_ID = 2**53 - 1
MAX_TOKEN_CHARS = 8192
BUILTIN_OPS = frozenset({"auth", "subscribe", "unsubscribe", "publish", "ping"})


class MalformedFrame(AppError):
    code = "malformed_frame"
    status = 400
    titles: ClassVar[Mapping[str, str]] = {"en": "Malformed frame", "ar": "إطار غير سليم"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "The frame is not a valid command.",
        "ar": "الإطار ليس أمرًا صالحًا.",
    }


class UnknownOp(AppError):
    code = "unknown_op"
    status = 400
    titles: ClassVar[Mapping[str, str]] = {"en": "Unknown operation", "ar": "عملية غير معروفة"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "Unknown op {op!r}.",
        "ar": "عملية غير معروفة: {op}.",
    }


class BadChannelName(AppError):
    code = "bad_channel"
    status = 400
    titles: ClassVar[Mapping[str, str]] = {"en": "Bad channel", "ar": "قناة غير صالحة"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "The channel name is not valid.",
        "ar": "اسم القناة غير صالح.",
    }


class AlreadySubscribed(Conflict):
    code = "already_subscribed"
    titles: ClassVar[Mapping[str, str]] = {"en": "Already subscribed", "ar": "مشترك بالفعل"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "This connection is already subscribed to the channel.",
        "ar": "هذا الاتصال مشترك في القناة بالفعل.",
    }


class NotSubscribed(Conflict):
    code = "not_subscribed"
    titles: ClassVar[Mapping[str, str]] = {"en": "Not subscribed", "ar": "غير مشترك"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "This connection is not subscribed to the channel.",
        "ar": "هذا الاتصال غير مشترك في القناة.",
    }


class AlreadyAuthenticated(Conflict):
    code = "already_authenticated"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Already authenticated",
        "ar": "تمت المصادقة بالفعل",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "Authenticate once, before subscribing.",
        "ar": "تتم المصادقة مرة واحدة قبل الاشتراك.",
    }


class TooManySubscriptions(AppError):
    code = "too_many_subscriptions"
    status = 429
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Too many subscriptions",
        "ar": "اشتراكات كثيرة جدًا",
    }
    details: ClassVar[Mapping[str, str]] = {
        "en": "At most {limit} subscriptions per connection.",
        "ar": "الحد الأقصى {limit} اشتراكًا لكل اتصال.",
    }


class State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Position:
    epoch: str
    offset: int


@dataclass(frozen=True, slots=True)
class Auth:
    id: int
    token: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    id: int
    channel: Channel
    since: Position | None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    id: int
    channel: Channel


@dataclass(frozen=True, slots=True)
class Publish:
    id: int
    channel: Channel
    data: Any


@dataclass(frozen=True, slots=True)
class Ping:
    id: int


@dataclass(frozen=True, slots=True)
class Custom:
    """An op another package registers (`Gateway.add_op`; api injects `bid`, and later ops
    the same way): the whole frame goes to it."""

    id: int
    op: str
    frame: dict[str, Any]


Command = Auth | Subscribe | Unsubscribe | Publish | Ping | Custom


class CommandError(Exception):
    """A frame that cannot become a command. `id` is the frame's id when it had a valid one."""

    def __init__(self, id: int | None, error: AppError) -> None:
        super().__init__(error.message)
        self.id = id
        self.error = error


def _channel(id_: int, frame: dict[str, Any]) -> Channel:
    try:
        return parse_channel(frame.get("channel"))
    except BadChannel as exc:
        raise CommandError(id_, BadChannelName(str(exc))) from None


def _since(id_: int, raw: Any) -> Position | None:
    if raw is None:
        return None
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("epoch"), str)
        or len(raw["epoch"]) > 64
        or not isinstance(raw.get("offset"), int)
        or isinstance(raw.get("offset"), bool)
        or not 0 <= raw["offset"] <= MAX_ID
    ):
        raise CommandError(id_, MalformedFrame("since must be {epoch: string, offset: int >= 0}"))
    return Position(raw["epoch"], raw["offset"])


def parse_command(frame: Any, *, custom_ops: Set[str] = frozenset()) -> Command:
    """The command in a decoded frame. Raises CommandError (with the id when there was one)."""
    if not isinstance(frame, dict):
        raise CommandError(None, MalformedFrame("A command is an object."))
    id_ = frame.get("id")
    if not isinstance(id_, int) or isinstance(id_, bool) or not 0 <= id_ <= MAX_ID:
        raise CommandError(None, MalformedFrame("A command needs an integer id >= 0."))
    op = frame.get("op")
    if not isinstance(op, str):
        raise CommandError(id_, MalformedFrame("A command needs an op."))
    if op == "ping":
        return Ping(id_)
    if op == "subscribe":
        return Subscribe(id_, _channel(id_, frame), _since(id_, frame.get("since")))
    if op == "unsubscribe":
        return Unsubscribe(id_, _channel(id_, frame))
    if op == "publish":
        if "data" not in frame:
            raise CommandError(id_, MalformedFrame("publish needs data."))
        return Publish(id_, _channel(id_, frame), frame["data"])
    if op == "auth":
        token = frame.get("token")
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
            raise CommandError(id_, MalformedFrame("auth needs a token string."))
        return Auth(id_, token)
    if op in custom_ops:
        return Custom(id_, op, frame)
    raise CommandError(id_, UnknownOp(params={"op": op[:40]}))


@dataclass(slots=True)
class TokenBucket:
    """`capacity` tokens refilled at `rate` per second; time is passed in (seconds)."""

    capacity: float
    rate: float
    tokens: float
    stamp: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_s(self) -> float:
        return max(0.0, (1.0 - self.tokens) / self.rate)


@dataclass(frozen=True, slots=True)
class Limits:
    max_subscriptions: int = 128
    command_rate: float = 20.0
    command_burst: int = 50


class Verdict(enum.Enum):
    OK = "ok"
    LIMITED = "limited"  # reply rate_limited to this command
    FLOOD = "flood"  # the client ignores rate_limited replies: close the connection


@dataclass(slots=True)
class Session:
    """One connection's protocol state."""

    limits: Limits
    now: float
    subject: Subject = ANONYMOUS
    state: State = State.OPEN
    subscriptions: set[str] = field(default_factory=set)
    _bucket: TokenBucket = field(init=False)
    _refused: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        burst = float(self.limits.command_burst)
        self._bucket = TokenBucket(burst, float(self.limits.command_rate), burst, self.now)

    def admit(self, now: float) -> Verdict:
        """Count one incoming frame against the command rate."""
        if self.state is not State.OPEN:
            return Verdict.FLOOD
        if self._bucket.take(now):
            self._refused = 0
            return Verdict.OK
        self._refused += 1
        if self._refused > self.limits.command_burst:
            return Verdict.FLOOD
        return Verdict.LIMITED

    def rate_limited(self) -> RateLimited:
        return RateLimited(self._bucket.wait_s(), "Too many commands on this connection.")

    def check_auth(self) -> None:
        """Raises AlreadyAuthenticated unless the session is anonymous with no subscription."""
        if self.subject.signed_in or self.subscriptions:
            raise AlreadyAuthenticated()

    def authenticated(self, subject: Subject) -> None:
        self.subject = subject

    def check_subscribe(self, channel: Channel) -> None:
        if channel.name in self.subscriptions:
            raise AlreadySubscribed()
        if len(self.subscriptions) >= self.limits.max_subscriptions:
            raise TooManySubscriptions(params={"limit": self.limits.max_subscriptions})

    def add_subscription(self, channel: Channel) -> None:
        self.subscriptions.add(channel.name)

    def check_unsubscribe(self, channel: Channel) -> None:
        if channel.name not in self.subscriptions:
            raise NotSubscribed()

    def remove_subscription(self, channel: Channel) -> None:
        self.subscriptions.discard(channel.name)

    def require_signed_in(self) -> None:
        if not self.subject.signed_in:
            raise Unauthorized("Authenticate first (op auth).")

    def close(self) -> None:
        self.state = State.CLOSED


def reply(id_: int, result: dict[str, Any]) -> dict[str, Any]:
    return {"id": id_, "result": result}


def error_reply(id_: int | None, error: AppError) -> dict[str, Any]:
    if id_ is None:
        return {"error": error.frame()}
    return {"id": id_, "error": error.frame()}
