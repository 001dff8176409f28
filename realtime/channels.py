"""Channel names and who may do what on each kind of channel (pure: no I/O).

Names (CONTRACT.md "Websocket"):

    auction:{id}     public read; the server publishes bids, extensions, close
    show:{id}        public read; show state and viewer counts
    show:{id}:chat   public read; signed-in users publish (the shows domain adds mute/ban)
    order:{id}       the order's buyer, seller and rider, and admins
    user:{id}        that user only
    admin            admins only

Ids are canonical lowercase UUIDs: `auction:ABC...` is refused rather than aliased, so one
channel never has two names (two Redis subscriptions, two offset sequences).

Admins may publish on any channel (the operator / benchmark publish path); other principals
only where the kind allows client publishing (show chat).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import ClassVar

from core.errors import AppError, Unauthorized

MAX_CHANNEL_LENGTH = 64


class Kind(enum.StrEnum):
    AUCTION = "auction"
    SHOW = "show"
    SHOW_CHAT = "show-chat"
    ORDER = "order"
    USER = "user"
    ADMIN = "admin"


PUBLIC_KINDS = frozenset({Kind.AUCTION, Kind.SHOW, Kind.SHOW_CHAT})
CLIENT_PUBLISH_KINDS = frozenset({Kind.SHOW_CHAT})
_ID_KINDS = {"auction": Kind.AUCTION, "show": Kind.SHOW, "order": Kind.ORDER, "user": Kind.USER}


class BadChannel(ValueError):
    """The string is not a channel name."""


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    kind: Kind
    id: uuid.UUID | None

    @property
    def is_public(self) -> bool:
        return self.kind in PUBLIC_KINDS


@dataclass(frozen=True, slots=True)
class Subject:
    """Who asks: `user_id` None means anonymous. `role` is a role value (`buyer`...)."""

    user_id: uuid.UUID | None
    role: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def signed_in(self) -> bool:
        return self.user_id is not None


ANONYMOUS = Subject(None, None)


def _canonical_uuid(text: str) -> uuid.UUID:
    try:
        value = uuid.UUID(text)
    except ValueError:
        raise BadChannel("channel id is not a UUID") from None
    if str(value) != text:
        raise BadChannel("channel id must be a lowercase hyphenated UUID")
    return value


def parse_channel(name: object) -> Channel:
    """The channel named `name`. Raises BadChannel for anything else."""
    if not isinstance(name, str) or not name or len(name) > MAX_CHANNEL_LENGTH:
        raise BadChannel("channel must be a non-empty string of at most 64 characters")
    if name == "admin":
        return Channel(name, Kind.ADMIN, None)
    parts = name.split(":")
    kind = _ID_KINDS.get(parts[0])
    if kind is None:
        raise BadChannel("unknown channel kind")
    if len(parts) == 2:
        return Channel(name, kind, _canonical_uuid(parts[1]))
    if len(parts) == 3 and kind is Kind.SHOW and parts[2] == "chat":
        return Channel(name, Kind.SHOW_CHAT, _canonical_uuid(parts[1]))
    raise BadChannel("malformed channel name")


def kind_of(name: str) -> str:
    """The kind label of a channel name for metrics (never the id); `other` if malformed."""
    try:
        return parse_channel(name).kind.value
    except BadChannel:
        return "other"


def needs_parties(channel: Channel, who: Subject) -> bool:
    """Whether `can_subscribe` needs the order's parties to decide (an order channel asked for
    by a signed-in non-admin)."""
    return channel.kind is Kind.ORDER and who.signed_in and not who.is_admin


def can_subscribe(
    who: Subject, channel: Channel, *, parties: Set[uuid.UUID] | None = None
) -> bool:
    """Whether `who` may read `channel`. For order channels pass the user ids of the order's
    buyer, seller and rider (`parties`); None means unknown, which refuses."""
    if channel.kind in PUBLIC_KINDS:
        return True
    if who.user_id is None:
        return False
    if channel.kind is Kind.USER:
        return channel.id == who.user_id
    if who.is_admin:
        return True
    if channel.kind is Kind.ORDER:
        return parties is not None and who.user_id in parties
    return False


def can_publish(who: Subject, channel: Channel) -> bool:
    """Whether `who` may publish on `channel` from a client connection. Domain rules (chat
    mutes, bans, rate) are checked afterwards by the kind's policy."""
    if who.is_admin:
        return True
    return who.signed_in and channel.kind in CLIENT_PUBLISH_KINDS


class ChannelForbidden(AppError):
    code = "forbidden"
    status = 403
    titles: ClassVar[Mapping[str, str]] = {"en": "Forbidden", "ar": "غير مسموح"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "You may not do this on this channel.",
        "ar": "لا يُسمح لك بهذا على هذه القناة.",
    }


def check_publish(who: Subject, channel: Channel) -> None:
    """Refuse a client's publish on `channel` unless `can_publish`: Unauthorized when `who` is
    not signed in, else ChannelForbidden."""
    if not can_publish(who, channel):
        if not who.signed_in:
            raise Unauthorized("Sign in to publish.")
        raise ChannelForbidden()
