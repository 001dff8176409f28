"""HTTP edge helpers shared by every package's routes: bounded body reading, strict JSON
decoding into msgspec Structs, JSON and problem+json responses, language negotiation, and the
`endpoint` decorator that records what the OpenAPI document says about a route.

Request bodies are decoded by msgspec into Structs declared with `forbid_unknown_fields=True`,
so unknown fields, wrong types and constraint violations all become `validation_failed` with a
field path; bytes that are not JSON become `malformed_body`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from core.errors import (
    SUPPORTED_LANGUAGES,
    AppError,
    FieldError,
    MalformedBody,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from core.text import control_errors

T = TypeVar("T")
PROBLEM_JSON = "application/problem+json"
DEFAULT_MAX_BODY = 1_048_576

_encoder = msgspec.json.Encoder()
_PATH_RE = re.compile(r" - at `\$(.*)`$")


class Schema(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base for request bodies: unknown fields are refused."""


def encode_json(data: Any) -> bytes:
    return _encoder.encode(data)


class JSONResponse(Response):
    """A JSON response encoded by msgspec (Structs, UUIDs, datetimes all work)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode_json(content)


def pick_language(accept_language: str | None) -> str:
    """The best supported language for an `Accept-Language` header (`en` by default)."""
    if not accept_language:
        return "en"
    best, best_q = "en", -1.0
    for part in accept_language.split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in SUPPORTED_LANGUAGES and q > best_q:
            best, best_q = primary, q
    return best


def problem_body(err: AppError, lang: str, instance: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://souk.dev/problems/{err.code.replace('_', '-')}",
        "title": err.title_for(lang),
        "status": err.status,
        "detail": err.detail_for(lang),
        "code": err.code,
    }
    if instance:
        body["instance"] = instance
    body.update(err.extra)
    return body


def problem_response(err: AppError, request: Request | None = None) -> Response:
    """Render `err` as RFC 9457 problem+json in the request's language."""
    lang = pick_language(request.headers.get("accept-language")) if request else "en"
    instance = request.url.path if request else None
    headers = dict(err.headers)
    headers["Content-Language"] = lang
    return Response(
        encode_json(problem_body(err, lang, instance)),
        status_code=err.status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


async def read_body(request: Request, *, limit: int = DEFAULT_MAX_BODY) -> bytes:
    """The request body, refusing more than `limit` bytes (413) before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise MalformedBody("Content-Length is not a number.") from None
        if size > limit:
            raise PayloadTooLarge(params={"limit": limit})
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(params={"limit": limit})
        chunks.append(chunk)
    return b"".join(chunks)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def decode_json(body: bytes, type_: type[T]) -> T:
    """Decode `body` into `type_` strictly, refusing control characters in its text
(core/text.py). Raises MalformedBody or ValidationFailed."""
    try:
        value = msgspec.json.decode(body, type=type_, strict=True)
    except msgspec.ValidationError as exc:
        value = _with_integral_floats(body, type_, exc)
    except msgspec.DecodeError:
        raise MalformedBody() from None
    errors = control_errors(value)  # NUL, ESC, bidi overrides... in any text field
    if errors:
        raise ValidationFailed(errors)
    return value


def _integral(obj: Any) -> Any:
    """`obj` with every float that has no fractional part made an int (JSON Schema's
    `integer` is any number with a zero fractional part: 2064.0 is one)."""
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    if isinstance(obj, list):
        return [_integral(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _integral(v) for k, v in obj.items()}
    return obj


def _with_integral_floats(body: bytes, type_: type[T], first: msgspec.ValidationError) -> T:
    """A second try for a body the strict decoder refused: integral floats as ints (the
    happy path never pays for it). Raises ValidationFailed with the first error otherwise."""
    try:
        generic = msgspec.json.decode(body)
    except msgspec.DecodeError:  # a type error seen before the bytes stopped being JSON
        raise MalformedBody() from None
    if any(f.is_integer() for f in _floats(generic)):
        try:
            return msgspec.convert(_integral(generic), type=type_, strict=True)
        except msgspec.ValidationError as exc:
            raise ValidationFailed([validation_field_error(str(exc))]) from None
    raise ValidationFailed([validation_field_error(str(first))]) from None


def _floats(obj: Any) -> list[float]:
    if isinstance(obj, float):
        return [obj]
    if isinstance(obj, list):
        return [f for v in obj for f in _floats(v)]
    if isinstance(obj, dict):
        return [f for v in obj.values() for f in _floats(v)]
    return []


def validation_field_error(message: str) -> FieldError:
    """Turn a msgspec ValidationError message into a FieldError with a dotted path."""
    match = _PATH_RE.search(message)
    path = ""
    if match:
        message = message[: match.start()]
        path = match.group(1)
    dotted = re.sub(r"\[(\d+)\]", r".\1", path).lstrip(".")
    unknown = re.match(r"Object contains unknown field `([^`]+)`", message)
    if unknown:
        dotted = f"{dotted}.{unknown.group(1)}".lstrip(".")
        message = "unknown field"
    missing = re.match(r"Object missing required field `([^`]+)`", message)
    if missing:
        dotted = f"{dotted}.{missing.group(1)}".lstrip(".")
        message = "required"
    return FieldError(dotted or "$", message)


async def parse_json(request: Request, type_: type[T], *, limit: int | None = None) -> T:
    """Read and validate the JSON body of `request` as `type_`.

    Raises UnsupportedMediaType (415), PayloadTooLarge (413), MalformedBody (400) or
    ValidationFailed (422)."""
    if not _is_json(request.headers.get("content-type")):
        raise UnsupportedMediaType(params={"expected": "Content-Type: application/json"})
    if limit is None:
        limit = getattr(request.app.state, "max_body_bytes", DEFAULT_MAX_BODY)
    body = await read_body(request, limit=limit)
    return decode_json(body, type_)


@dataclass(frozen=True)
class EndpointSpec:
    """What the OpenAPI document says about one handler."""

    summary: str
    tags: tuple[str, ...] = ()
    body: type | None = None
    body_media_type: str = "application/json"
    responses: Mapping[int, type | None] = field(default_factory=dict)
    auth: bool = False
    roles: tuple[str, ...] = ()
    errors: tuple[int, ...] = ()
    query: Mapping[str, str] = field(default_factory=dict)
    idempotent_key: bool = False
    body_required: bool = True


def endpoint(
    summary: str,
    *,
    tags: tuple[str, ...] = (),
    body: type | None = None,
    body_media_type: str = "application/json",
    responses: Mapping[int, type | None] | None = None,
    auth: bool = False,
    roles: tuple[str, ...] = (),
    errors: tuple[int, ...] = (),
    query: Mapping[str, str] | None = None,
    idempotency_key: bool = False,
    body_required: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Attach an `EndpointSpec` to a handler; `api.openapi` reads it. Changes no behaviour."""
    spec = EndpointSpec(
        summary=summary,
        tags=tags,
        body=body,
        body_media_type=body_media_type,
        responses=responses or {200: None},
        auth=auth,
        roles=roles,
        errors=errors,
        query=query or {},
        idempotent_key=idempotency_key,
        body_required=body_required,
    )

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__souk_endpoint__ = spec  # type: ignore[attr-defined]
        return fn

    return mark


def endpoint_spec(fn: Any) -> EndpointSpec | None:
    spec = getattr(fn, "__souk_endpoint__", None)
    return spec if isinstance(spec, EndpointSpec) else None
