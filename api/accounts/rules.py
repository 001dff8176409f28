"""Pure account rules: email normalisation and input limits. No I/O."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Literal

import msgspec

from core.errors import FieldError, ValidationFailed
from core.http import Schema
from core.text import first_refused

PASSWORD_MIN = 10
PASSWORD_MAX = 128
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")

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


def normalize_email(email: str) -> str:
    """The key emails are unique by: NFKC, trimmed, lower-cased."""
    return unicodedata.normalize("NFKC", email).strip().lower()


def validate_registration(body: RegisterBody, *, allowed_roles: frozenset[str]) -> None:
    """Raise ValidationFailed listing every invalid field of a registration."""
    errors: list[FieldError] = []
    if not _EMAIL_RE.match(normalize_email(body.email)):
        errors.append(FieldError("email", "not a valid email address"))
    if len(body.password) < PASSWORD_MIN:
        errors.append(FieldError("password", f"must be at least {PASSWORD_MIN} characters"))
    if normalize_email(body.email) and body.password.lower() == normalize_email(body.email):
        errors.append(FieldError("password", "must differ from the email"))
    name = body.display_name.strip()
    if not name or first_refused(body.display_name) is not None:
        errors.append(FieldError("display_name", "must be printable text"))
    if body.role not in allowed_roles:
        errors.append(FieldError("role", "must be one of " + ", ".join(sorted(allowed_roles))))
    if errors:
        raise ValidationFailed(errors)
