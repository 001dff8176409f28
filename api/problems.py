"""Exception handlers: every failure leaves as RFC 9457 problem+json with a stable code."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from core.errors import AppError, MethodNotAllowed, NotFound, PayloadTooLarge
from core.http import problem_response


class HttpError(AppError):
    """A Starlette HTTPException with a status we have no specific class for."""

    code = "http_error"


async def app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return problem_response(exc, request)


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    err: AppError
    if exc.status_code == 404:
        err = NotFound()
    elif exc.status_code == 405:
        headers = dict(exc.headers or {})
        headers["Allow"] = ", ".join(allowed_methods(request))
        err = MethodNotAllowed(headers=headers)
    elif exc.status_code == 413:
        err = PayloadTooLarge(params={"limit": request.app.state.max_body_bytes})
    else:
        err = HttpError(exc.detail)
        err.status = exc.status_code  # type: ignore[misc]
    return problem_response(err, request)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app accepts on the request's path (Starlette's own 405
    names only the first route that matched the path)."""
    methods: set[str] = set()
    scope = {**request.scope, "method": "GET"}
    for route in request.app.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(scope)[0] is not Match.NONE:
            methods |= set(route_methods)
    return sorted(methods)


handlers = {AppError: app_error, HTTPException: http_exception}
