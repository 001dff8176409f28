"""Pure account rules: email normalisation and input limits. No I/O."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

import msgspec

from core.errors import FieldError, ValidationFailed
from core.http import Schema

PASSWORD_MIN = 10
PASSWORD_MAX = 128
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s.]{2,63}$")

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=PASSWORD_MAX)]
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]


class RegisterBody(Schema):
    email: Email
    password: Password
    display_name: DisplayName
    role: str = "buyer"


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
    if not name or any(unicodedata.category(c).startswith("C") for c in name):
        errors.append(FieldError("display_name", "must be printable text"))
    if body.role not in allowed_roles:
        errors.append(FieldError("role", "must be one of " + ", ".join(sorted(allowed_roles))))
    if errors:
        raise ValidationFailed(errors)
