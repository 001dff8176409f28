"""Show request bodies and views (msgspec schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from core.http import Schema

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


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
