"""The application factory: `uvicorn --factory api.app:create_app`.

`create_app()` reads settings (failing loudly), and its lifespan opens, in order: the JWT key
ring, the PostgreSQL pool (applying pending migrations under a lock unless turned off), Redis,
the rate limiter and the outbox relay. It exposes them as one typed `Runtime` on
`request.state.runtime` and closes everything in reverse order on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from api import health, problems
from api.accounts import routes as accounts
from api.middleware import RequestContext
from api.openapi import build_document
from api.realtime_wiring import open_realtime
from api.shows import routes as shows
from core import db
from core.auth import KeyRing, TokenService
from core.config import Settings
from core.context import Runtime
from core.http import JSONResponse, endpoint
from core.logs import configure_logging
from core.metrics import Metrics
from core.outbox import OutboxRelay
from core.ratelimit import RateLimiter
from core.redis_client import Keys, create_redis
from realtime import routes as realtime_routes
from realtime.endpoint import websocket_endpoint
from realtime.metrics import HubMetrics
from realtime.transport import WebsocketShortcut

VERSION = "0.1.0"
log = logging.getLogger("souk.app")


@asynccontextmanager
async def open_runtime(settings: Settings, metrics: Metrics) -> AsyncIterator[Runtime]:
    """Open every shared resource of a process; close them all on exit, even after a failure."""
    keys = KeyRing.load(settings.jwt_key_dir, settings.jwt_active_kid)
    async with AsyncExitStack() as stack:
        if settings.migrate_on_start:
            applied = await db.migrate_dsn(settings.database_url, schema=settings.database_schema)
            if applied:
                log.info("migrations applied", extra={"versions": applied})
        pool = await db.create_pool(
            settings.database_url,
            schema=settings.database_schema,
            min_size=settings.database_pool_min,
            max_size=settings.database_pool_max,
        )
        stack.push_async_callback(pool.close)
        redis = create_redis(settings.redis_url)
        stack.push_async_callback(redis.aclose)
        yield Runtime(
            settings=settings,
            pool=pool,
            redis=redis,
            keys=Keys(settings.redis_prefix),
            tokens=TokenService(
                keys, settings.jwt_issuer, settings.jwt_audience, settings.access_token_ttl_s
            ),
            metrics=metrics,
            limiter=RateLimiter(redis, prefix=settings.redis_prefix, metrics=metrics),
        )


@asynccontextmanager
async def running(coro: Any, name: str) -> AsyncIterator[asyncio.Task[Any]]:
    """Run `coro` as a background task for the duration of the block; cancel it on exit."""
    task = asyncio.create_task(coro, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the ASGI application. Reads the environment when `settings` is None."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, json=settings.log_json)
    metrics = Metrics()
    hub_metrics = HubMetrics(metrics.registry)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with AsyncExitStack() as stack:
            rt = await stack.enter_async_context(open_runtime(settings, metrics))
            relay = OutboxRelay(
                settings.database_url, rt.pool, schema=settings.database_schema, metrics=metrics
            )
            app.state.relay = relay
            realtime = await stack.enter_async_context(open_realtime(rt, relay, hub_metrics))
            await stack.enter_async_context(running(relay.run(), "outbox-relay"))
            log.info("souk started", extra={"settings": settings.safe_dict()})
            yield {
                "runtime": rt,
                "hub": realtime.hub,
                "ws_gateway": realtime.gateway,
                "presence": realtime.presence,
            }
            log.info("souk stopping")

    routes: list[BaseRoute] = [
        *health.routes,
        *accounts.routes,
        *realtime_routes.routes,
        *shows.routes,
        WebSocketRoute("/v1/ws", websocket_endpoint),
    ]

    @endpoint("This OpenAPI document", tags=("ops",), responses={200: None})
    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    routes.append(Route("/openapi.json", openapi, methods=["GET"]))
    document = build_document(routes, version=VERSION)

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(WebsocketShortcut, path="/v1/ws", endpoint=websocket_endpoint),
            Middleware(RequestContext, metrics=metrics),
        ],
        exception_handlers=problems.handlers,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.max_body_bytes = settings.max_body_bytes
    app.state.settings = settings
    app.state.metrics = metrics
    return app
