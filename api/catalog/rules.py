"""Pure catalog rules: image URL checks, what the schemas cannot express, query parsing.

No I/O.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from api.catalog.schemas import MAX_PRICE, CreateProductBody, PatchProductBody
from core.errors import FieldError, ValidationFailed

_BAD_HOSTS = frozenset({"localhost", "localhost.localdomain"})
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOST_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})+$")


def image_problem(url: str) -> str | None:
    """Why `url` is not acceptable as a product image, or None. We never fetch these URLs, but
    clients do: only public https URLs with a DNS host name are accepted (no credentials, no IP
    literals, no local names)."""
    if any(c.isspace() or not c.isprintable() for c in url):
        return "must not contain spaces or control characters"
    if not url.isascii():
        return "must be ASCII (percent-encode the rest)"
    parts = urlsplit(url)
    if parts.scheme != "https":
        return "must be an https URL"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials"
    host = (parts.hostname or "").lower()
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return "must use a host name, not an IP address"
    if host in _BAD_HOSTS or host.endswith(".local") or not _HOST_RE.match(host):
        return "must use a public host name"
    return None


def check_images(images: list[str], field: str = "images") -> None:
    errors = [
        FieldError(f"{field}.{i}", problem)
        for i, url in enumerate(images)
        if (problem := image_problem(url)) is not None
    ]
    if errors:
        raise ValidationFailed(errors)


def check_create(body: CreateProductBody) -> None:
    """Refuse what the schema cannot express: blank titles, bad image URLs (a SKU given twice
    is a conflict, `has_duplicate_sku`: 409 like a SKU another variant holds)."""
    errors: list[FieldError] = []
    if not body.title.strip():
        errors.append(FieldError("title", "must not be blank"))
    errors.extend(
        FieldError(f"images.{i}", p)
        for i, url in enumerate(body.images)
        if (p := image_problem(url)) is not None
    )
    if errors:
        raise ValidationFailed(errors)


def has_duplicate_sku(body: CreateProductBody) -> bool:
    skus = [v.sku for v in body.variants]
    return len(set(skus)) != len(skus)


def check_patch(body: PatchProductBody) -> None:
    if isinstance(body.title, str) and not body.title.strip():
        raise ValidationFailed([FieldError("title", "must not be blank")])
    if isinstance(body.images, list):
        check_images(body.images)


def check_price_range(low: int | None, high: int | None) -> None:
    if low is not None and high is not None and low > high:
        raise ValidationFailed([FieldError("min_price", "must not exceed max_price")])


def parse_money_query(raw: str | None, field: str) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_PRICE:
        raise ValidationFailed([FieldError(field, f"must be an integer from 0 to {MAX_PRICE}")])
    return value


def parse_search(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    if len(raw) > 200:
        raise ValidationFailed([FieldError("q", "must be at most 200 characters")])
    return raw.strip()
