"""Account request bodies and views, with their input limits (msgspec schemas)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from core.http import Schema

PASSWORD_MAX = 128

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=PASSWORD_MAX)]
# printable (core/text.py) and not only spaces
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=80, pattern=(
    r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]*"
    r"[^\s\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
    r"[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]*$"))]


class RegisterBody(Schema):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254, extra_json_schema={
        "format": "email"})]
    # at least PASSWORD_MIN: checked by validate_registration (so every bad field is listed at
    # once) and stated in the OpenAPI document (api/openapi_rules.py)
    password: Password
    display_name: DisplayName
    role: Literal["buyer", "seller", "rider"] = "buyer"


class LoginBody(Schema):
    email: Email
    password: Password


class RefreshBody(Schema):
    refresh_token: Annotated[str, msgspec.Meta(min_length=16, max_length=200)]


class LogoutBody(Schema):
    refresh_token: Annotated[str, msgspec.Meta(min_length=16, max_length=200)] | None = None


class TokenPair(msgspec.Struct):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - a token type, not a secret


class UserView(msgspec.Struct):
    id: str
    email: str
    display_name: str
    role: str
    created_at: str
