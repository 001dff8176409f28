"""Routes for the web pages: each page is a static HTML shell with its own ES module; the
scripts read ids from the path and talk to /v1 and /v1/ws.

Every response here carries a strict Content-Security-Policy (no inline script or style, same
origin only, no frames) and headers that keep the pages out of other sites' frames and keep
URLs out of Referer headers. Tokens never travel in URLs: the pages keep them in
sessionStorage and send them as `Authorization: Bearer` (and in the websocket's `auth` op)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from core.errors import NotFound
from core.http import endpoint
from core.ids import parse_uuid

STATIC = Path(__file__).resolve().parent / "static"

CSP = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob: mediastream:",
    "connect-src 'self'",
    "font-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
))
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=()",
}
PAGES = {  # path -> (the HTML shell, what it is)
    "/": ("shows.html", "Web page: live and upcoming shows"),
    "/signin": ("signin.html", "Web page: sign in"),
    "/shows/{show_id}": ("show.html", "Web page: a live show (video, auction, chat)"),
    "/orders/{order_id}": ("order.html", "Web page: an order, live, with the rider on a map"),
    "/admin": ("admin.html", "Web page: the operations dashboard (admins)"),
    "/studio": ("studio.html", "Web page: the seller's studio"),
}


def page(name: str, summary: str) -> Callable[[Request], Awaitable[Response]]:
    @endpoint(summary, tags=("pages",), responses={200: None}, errors=(404,))
    async def serve(request: Request) -> Response:
        if any(parse_uuid(value) is None for value in request.path_params.values()):
            raise NotFound()  # every id in a page's path is a UUID: anything else names nothing
        return FileResponse(STATIC / name, media_type="text/html; charset=utf-8",
                            headers={**HEADERS, "Cache-Control": "no-cache"})

    return serve


class SecuredStatic:
    """StaticFiles with the pages' security headers on every answer."""

    def __init__(self) -> None:
        self._files = StaticFiles(directory=STATIC)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
                headers.append((b"cache-control", b"no-cache"))
                message = {**message, "headers": headers}
            await send(message)

        await self._files(scope, receive, secured)


@endpoint("Web page: the list of shows lives at /", tags=("pages",), responses={307: None})
async def shows_redirect(request: Request) -> Response:
    return RedirectResponse("/", status_code=307)


def build_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route(path, page(name, summary), methods=["GET", "HEAD"])
        for path, (name, summary) in PAGES.items()
    ]
    routes.append(Route("/shows", shows_redirect, methods=["GET"]))
    routes.append(Mount("/static", app=SecuredStatic(), name="static"))
    return routes
