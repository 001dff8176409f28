"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request).

`RequestContext` gives every HTTP request an id (kept from a sane `X-Request-ID` header or made
new), echoes it back, counts and times the request by route template, writes one access log
line, and turns any unhandled exception into a problem+json 500 that leaks nothing. A query
string holding control characters (core/text.py) is refused here, for every route, with 422.
Every response says `X-Content-Type-Options: nosniff` and, unless its route set a
`Cache-Control`, `Cache-Control: no-store` (tokens, balances and orders are never cached).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import AppError, FieldError, ValidationFailed
from core.http import PROBLEM_JSON, encode_json, pick_language, problem_body
from core.logs import request_id
from core.metrics import Metrics, status_class
from core.text import MESSAGE, first_refused

log = logging.getLogger("souk.http")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        token = request_id.set(rid)
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
            else:
                await self._http(scope, receive, send, rid, headers)
        finally:
            request_id.reset(token)

    async def _http(
        self, scope: Scope, receive: Receive, send: Send, rid: str, headers: dict[bytes, bytes]
    ) -> None:
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = _with_security_headers(message["headers"], rid)
            await send(message)

        self.metrics.http_in_flight.inc()
        try:
            scope["query_string"] = without_empty_values(scope.get("query_string", b""))
            refused = query_errors(scope["query_string"])
            if refused is not None:
                lang = pick_language(headers.get(b"accept-language", b"").decode("latin-1"))
                await _problem(send_wrapper, refused, lang, scope.get("path"))
                return
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error", extra={"path": scope.get("path")})
            if not response_started:
                await _internal_error(send_wrapper, send, scope, headers)
        finally:
            self.metrics.http_in_flight.dec()
            self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, elapsed: float) -> None:
        """The request's metrics and its access-log line."""
        route = _route_template(scope)
        method = scope.get("method", "GET")
        self.metrics.http_requests.labels(route, method, status_class(status)).inc()
        self.metrics.http_latency.labels(route, method).observe(elapsed)
        log.info(
            "request",
            extra={
                "method": method,
                "path": scope.get("path"),
                "route": route,
                "status": status,
                "ms": round(elapsed * 1000, 2),
            },
        )


async def _internal_error(
    send_start: Send, send: Send, scope: Scope, headers: dict[bytes, bytes]
) -> None:
    """A 500 problem, for an unhandled error before the response started. The start goes
    through `send_start` (the wrapper that adds the security headers and records the status)."""
    lang = pick_language(headers.get(b"accept-language", b"").decode("latin-1"))
    body = encode_json(problem_body(AppError(), lang, scope.get("path")))
    await send_start(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _with_security_headers(headers: list[tuple[bytes, bytes]], rid: str) -> list[Any]:
    names = {name.lower() for name, _ in headers}
    out = [*headers, (b"x-request-id", rid.encode())]
    if b"x-content-type-options" not in names:  # the pages set their own: never said twice
        out.append((b"x-content-type-options", b"nosniff"))
    if b"cache-control" not in names:
        out.append((b"cache-control", b"no-store"))
    return out


def without_empty_values(query_string: bytes) -> bytes:
    """The query string without `name=` pairs: an empty value means the parameter is absent,
    for every route alike (as the OpenAPI document says)."""
    if not query_string:
        return query_string
    parts = query_string.split(b"&")
    kept = [p for p in parts if p.partition(b"=")[2]]
    return query_string if len(kept) == len(parts) else b"&".join(kept)


def query_errors(query_string: bytes) -> AppError | None:
    """ValidationFailed naming each query parameter that holds a control character."""
    if not query_string:
        return None
    errors = []
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        found = first_refused(name) or first_refused(value)
        if found is not None:
            errors.append(FieldError(f"query.{'?' if first_refused(name) else name}",
                                     MESSAGE.format(found)))
    return ValidationFailed(errors) if errors else None


async def _problem(send: Send, err: AppError, lang: str, path: str | None) -> None:
    body = encode_json(problem_body(err, lang, path))
    await send({
        "type": "http.response.start",
        "status": err.status,
        "headers": [(b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


def _route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class CorsExceptOwn:
    """Starlette's `CORSMiddleware` (the `CORS_ORIGINS` allow-list) for every route except those
    that answer CORS themselves: WHIP and WHEP (RFC 9725) take any origin, as publishers and
    players are served from anywhere and authenticate with Bearer tokens, never cookies. Without
    this, the allow-list's preflight check would refuse their `OPTIONS` before the route ran."""

    def __init__(self, app: ASGIApp, /, *, own: re.Pattern[str], **options: Any) -> None:
        self.app = app
        self.cors = CORSMiddleware(app, **options)
        self.own = own

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.own.match(scope["path"]):
            await self.app(scope, receive, send)
        else:
            await self.cors(scope, receive, send)
