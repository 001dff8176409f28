"""Pure account rules: email normalisation and the registration checks. No I/O."""

from __future__ import annotations

import re
import unicodedata

from api.accounts.schemas import RegisterBody
from core.errors import FieldError, ValidationFailed
from core.text import first_refused

PASSWORD_MIN = 10
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


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
