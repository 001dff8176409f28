"""The application factory: `uvicorn --factory api.app:create_app`.

`create_app()` reads settings (failing loudly), builds the routes, the OpenAPI document and the
middleware, and its lifespan (`open_parts`) opens, in order: the JWT key ring, the PostgreSQL
pool (applying pending migrations under a lock unless turned off), Redis, the rate limiter, the
/metrics listener (METRICS_PORT), the outbox relay, the real-time hub, rider tracking, the
commerce jobs, the auctions and live video. It exposes them on the request state (`runtime`,
`hub`, `ws_gateway`, `presence`, `revocations`, `auctions`, `tracking`, `streaming`) and closes
everything in reverse order on shutdown.

This is the only place that connects the domains: the hub gets the orders' parties, tracking's
`location` op and the auctions' `bid` op; tracking hears the orders' events from the outbox
relay (`api.tracking_ports`); the auctions get the hub, the ledger, checkout and the catalog
through the adapters in `api.auction_ports`; live video gets the shows (`api.streaming_wiring`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from api import health, problems
from api.accounts import admin_routes as accounts_admin
from api.accounts import routes as accounts
from api.admin import routes as admin
from api.auction_ports import CatalogVariants, CommerceOrders, HubPublisher, LedgerFunds
from api.cart import routes as cart
from api.catalog import routes as catalog
from api.checkout import routes as checkout
from api.ledger import admin_routes as ledger_admin
from api.ledger import routes as ledger
from api.ledger.batcher import LedgerBatcher
from api.ledger.crypto import KeyBox
from api.ledger.metrics import LedgerMetrics
from api.ledger.metrics import snapshot as ledger_snapshot
from api.middleware import CorsExceptOwn, RequestContext
from api.openapi import build_document
from api.orders import jobs as order_jobs
from api.orders import routes as orders
from api.orders.metrics import CommerceMetrics
from api.orders.store import parties
from api.realtime_wiring import Realtime, open_realtime
from api.shows import routes as shows
from api.streaming_wiring import open_streaming
from api.tracking_ports import TrackedOrders, hub_publisher, order_events_handler
from api.web import routes as web_pages
from auctions import routes as auction_routes
from auctions.metrics import AuctionMetrics
from auctions.runtime import Routing, running_auctions, settings_from
from auctions.service import AuctionService
from core import db, idempotency
from core.auth import KeyRing, TokenService
from core.authcache import RevocationVerdicts
from core.config import Settings
from core.context import Runtime
from core.errors import AppError
from core.gctune import GcPauses, settle_after_startup
from core.http import JSONResponse, endpoint
from core.httpserver import BoundedHttpToolsProtocol
from core.logs import configure_logging
from core.metrics import Metrics
from core.outbox import OutboxRelay
from core.ratelimit import RateLimiter
from core.redis_client import Keys, create_redis
from core.tasks import report_if_stuck, stop
from realtime import routes as realtime_routes
from realtime.endpoint import websocket_endpoint
from realtime.metrics import HubMetrics
from realtime.transport import WebsocketShortcut
from streaming import routes as streaming_routes
from streaming.metrics import StreamingMetrics
from tracking import routes as tracking_routes
from tracking import service as tracking_service
from tracking.metrics import TrackingMetrics
from tracking.service import Tracking

VERSION = "0.1.0"
LEDGER_GAUGES = "ledger_gauges"
IDEMPOTENCY_PRUNE = "idempotency_prune"
log = logging.getLogger("souk.app")
# a shutdown still running after this long logs every pending task's stack (core/tasks.py)
SHUTDOWN_REPORT_S = 20.0


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
        stack.push_async_callback(db.close_pool, pool)
        redis = create_redis(settings.redis_url, cluster=settings.redis_cluster)
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
            verdicts=RevocationVerdicts(settings.auth_revocation_recheck_s),
        )


@asynccontextmanager
async def running(coro: Any, name: str) -> AsyncIterator[asyncio.Task[Any]]:
    """Run `coro` as a background task for the duration of the block; cancel it on exit."""
    task = asyncio.create_task(coro, name=name)
    try:
        yield task
    finally:
        await stop(task)


def commerce_jobs(
    settings: Settings, rt: Runtime, metrics: CommerceMetrics, ledger_metrics: LedgerMetrics,
) -> list[tuple[str, Any]]:
    """The commerce background loops (reservation expiry, seller settlement, the ledger's
    gauges, pruning old Idempotency-Key answers) as coroutines."""
    s = settings
    return [
        (LEDGER_GAUGES, order_jobs.run_periodically(
            LEDGER_GAUGES, s.ledger_metrics_interval_s,
            lambda: ledger_snapshot(rt.pool, ledger_metrics), metrics,
        )),
        (order_jobs.EXPIRY, order_jobs.run_periodically(
            order_jobs.EXPIRY, s.reservation_sweep_interval_s,
            lambda: order_jobs.expire_reservations(rt.pool, metrics, batch=s.commerce_job_batch),
            metrics,
        )),
        (order_jobs.SETTLEMENT, order_jobs.run_periodically(
            order_jobs.SETTLEMENT, s.settlement_interval_s,
            lambda: order_jobs.settle_delivered(
                rt.pool, metrics, hold_s=s.settlement_hold_s, fee_bps=s.platform_fee_bps,
                batch=s.commerce_job_batch,
            ),
            metrics,
        )),
        (IDEMPOTENCY_PRUNE, order_jobs.run_periodically(
            IDEMPOTENCY_PRUNE, s.idempotency_prune_interval_s,
            lambda: idempotency.prune(rt.pool, older_than_s=s.idempotency_keep_s),
            metrics,
        )),
    ]


def order_parties_of(rt: Runtime) -> Callable[[uuid.UUID], Awaitable[set[uuid.UUID]]]:
    """Who may read `order:{id}` besides admins: its buyer, seller and assigned rider."""

    async def order_parties(order_id: uuid.UUID) -> set[uuid.UUID]:
        found = await parties(rt.pool, order_id)
        return {p for p in found or () if p is not None}

    return order_parties


class UpgradeRequired(AppError):
    code = "upgrade_required"
    status = 426
    titles: ClassVar[Mapping[str, str]] = {"en": "Upgrade required", "ar": "يلزم الترقية"}
    details: ClassVar[Mapping[str, str]] = {
        "en": "This endpoint speaks websocket only (Upgrade: websocket).",
        "ar": "هذه النقطة تعمل عبر websocket فقط.",
    }

    def __init__(self) -> None:
        super().__init__(headers={"Upgrade": "websocket"})


@endpoint("The websocket endpoint (see realtime/README.md); plain HTTP gets 426",
          tags=("realtime",), responses={101: None}, errors=(426,))
async def websocket_upgrade_required(request: Request) -> Response:
    raise UpgradeRequired()


@dataclass(frozen=True, slots=True)
class AppMetrics:
    """The metrics of every part of a process, all on the registry of `core`."""

    core: Metrics
    commerce: CommerceMetrics
    ledger: LedgerMetrics
    hub: HubMetrics
    auctions: AuctionMetrics
    tracking: TrackingMetrics
    streaming: StreamingMetrics

    @classmethod
    def create(cls) -> AppMetrics:
        core = Metrics()
        return cls(
            core=core,
            commerce=CommerceMetrics(core.registry),
            ledger=LedgerMetrics(core.registry),
            hub=HubMetrics(core.registry),
            auctions=AuctionMetrics(core.registry),
            tracking=TrackingMetrics(core.registry),
            streaming=StreamingMetrics(core.registry),
        )


def configure_process(settings: Settings) -> None:
    """Process-wide switches: log format and level, the HTTP parser's request-header bounds."""
    configure_logging(settings.log_level, json=settings.log_json)
    BoundedHttpToolsProtocol.configure(
        max_header_bytes=settings.http_max_header_bytes, max_headers=settings.http_max_headers,
        header_timeout_s=float(settings.http_header_timeout_s),
    )


async def open_tracking(
    stack: AsyncExitStack, settings: Settings, rt: Runtime, relay: OutboxRelay,
    realtime: Realtime, metrics: TrackingMetrics,
) -> Tracking:
    """Rider tracking, fed the orders' events by the relay; the hub's `location` op."""
    tracking = await stack.enter_async_context(tracking_service.build(
        settings, rt.pool, rt.redis, TrackedOrders(rt.pool),
        hub_publisher(realtime.hub), metrics,
    ).running())
    relay.add_handler(order_events_handler(tracking))
    realtime.gateway.add_op("location", tracking.location_op())
    return tracking


async def open_auctions(
    stack: AsyncExitStack, settings: Settings, rt: Runtime, realtime: Realtime,
    metrics: AuctionMetrics,
) -> AuctionService:
    """The auctions, on the hub, the ledger, checkout and the catalog; the hub's `bid` op."""
    auctions = await stack.enter_async_context(running_auctions(
        rt.pool,
        limiter=rt.limiter,
        settings=settings_from(settings),
        publisher=HubPublisher(realtime.hub),
        funds=LedgerFunds(rt.pool),
        orders=CommerceOrders(payment_window_s=settings.auction_payment_window_s),
        variants=CatalogVariants(),
        run_closer=settings.auction_closer,
        routing=Routing(rt.redis, settings.redis_prefix,
                        on_forward=lambda outcome: (
                            metrics.bids_routed.labels(outcome).inc()))
        if settings.auction_routing else None,
        durable=not settings.auction_ack_before_commit,
        metrics=metrics,
    ))
    realtime.gateway.add_op("bid", auctions.bid_op())
    return auctions


async def open_parts(
    stack: AsyncExitStack, app: Starlette, settings: Settings, metrics: AppMetrics,
) -> dict[str, Any]:
    """Open every part in order on `stack` (closed in reverse); the request state they give."""
    rt = await stack.enter_async_context(open_runtime(settings, metrics.core))
    # HTTP top-ups post through the ledger's group commit (api/ledger/batcher.py)
    ledger_batcher = LedgerBatcher(rt.pool)
    stack.push_async_callback(ledger_batcher.aclose)
    stack.enter_context(health.serve_metrics(settings, metrics.core))
    relay = OutboxRelay(
        settings.database_url, rt.pool, schema=settings.database_schema, metrics=metrics.core
    )
    app.state.relay = relay
    realtime = await stack.enter_async_context(open_realtime(rt, relay, metrics.hub))
    realtime.gateway.order_parties = order_parties_of(rt)
    tracking = await open_tracking(stack, settings, rt, relay, realtime, metrics.tracking)
    await stack.enter_async_context(running(relay.run(), "outbox-relay"))
    for name, task in commerce_jobs(settings, rt, metrics.commerce, metrics.ledger):
        await stack.enter_async_context(running(task, name))
    auctions = await open_auctions(stack, settings, rt, realtime, metrics.auctions)
    streaming = await stack.enter_async_context(
        open_streaming(rt, realtime.hub, metrics.streaming))
    gc_pauses = GcPauses(metrics.core.registry)
    stack.callback(gc_pauses.close)
    settle_after_startup(settings.gc_gen0_threshold)
    return {
        "runtime": rt,
        "hub": realtime.hub,
        "ws_gateway": realtime.gateway,
        "presence": realtime.presence,
        "revocations": realtime.revocations,
        "ledger_batcher": ledger_batcher,
        "auctions": auctions,
        "tracking": tracking,
        "streaming": streaming,
    }


def lifespan_of(
    settings: Settings, metrics: AppMetrics,
) -> Callable[[Starlette], AbstractAsyncContextManager[dict[str, Any]]]:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        began = time.monotonic()
        watchdog: asyncio.Task[None] | None = None
        try:
            async with AsyncExitStack() as stack:
                state = await open_parts(stack, app, settings, metrics)
                log.info("souk started", extra={
                    "settings": settings.safe_dict(),
                    "duration_s": round(time.monotonic() - began, 3)})
                yield state
                log.info("souk stopping")
                began = time.monotonic()
                watchdog = asyncio.create_task(
                    report_if_stuck(SHUTDOWN_REPORT_S, "shutdown"), name="shutdown-watchdog")
        finally:
            if watchdog is not None:
                watchdog.cancel()
        log.info("souk stopped", extra={"duration_s": round(time.monotonic() - began, 3)})

    return lifespan


def api_routes() -> list[BaseRoute]:
    """Every route but /openapi.json and the web pages, in matching order."""
    routes: list[BaseRoute] = [*health.routes, *accounts.routes, *accounts_admin.routes]
    routes += [*ledger.routes, *ledger_admin.routes]
    routes += [
        *catalog.routes,
        *cart.routes,
        *checkout.routes,
        *orders.routes,
        *admin.routes,
    ]
    routes += [
        *realtime_routes.routes,
        *shows.routes,
        *auction_routes.build_routes(),
        *tracking_routes.routes,
        *streaming_routes.routes,
        WebSocketRoute("/v1/ws", websocket_endpoint),
        Route("/v1/ws", websocket_upgrade_required, methods=["GET"]),  # plain HTTP: 426
    ]
    return routes


def with_openapi(routes: list[BaseRoute], settings: Settings) -> list[BaseRoute]:
    """`routes`, then /openapi.json and the web pages (api/web/); the document covers them all."""

    @endpoint("This OpenAPI document", tags=("ops",), responses={200: None})
    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    routes = [*routes, Route("/openapi.json", openapi, methods=["GET"])]
    routes += web_pages.build_routes()
    document = build_document(routes, version=VERSION,
                              currencies=sorted(settings.accepted_currencies))
    return routes


def middleware(settings: Settings, metrics: Metrics) -> list[Middleware]:
    return [
        # First: websocket upgrades on /v1/ws skip the HTTP middleware (memory per
        # connection; the endpoint writes pre-encoded frames to the transport).
        Middleware(WebsocketShortcut, path="/v1/ws", endpoint=websocket_endpoint),
        # Browser pages of CORS_ORIGINS only (none by default); preflights answered here,
        # except WHIP/WHEP's, which take any origin (streaming/routes.py).
        Middleware(CorsExceptOwn, own=streaming_routes.OWN_CORS_PATHS,
                   allow_origins=list(settings.cors_origins),
                   allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                   allow_headers=["Authorization", "Content-Type", "Idempotency-Key",
                                  "Accept-Language", "X-Request-ID"],
                   expose_headers=["Retry-After", "X-Request-ID", "Location",
                                   "Content-Language"], max_age=600),
        Middleware(RequestContext, metrics=metrics),
    ]


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the ASGI application. Reads the environment when `settings` is None."""
    settings = settings or Settings.from_env()
    configure_process(settings)
    metrics = AppMetrics.create()
    app = Starlette(
        routes=with_openapi(api_routes(), settings),
        middleware=middleware(settings, metrics.core),
        exception_handlers=problems.handlers,
        lifespan=lifespan_of(settings, metrics),
    )
    app.state.max_body_bytes = settings.max_body_bytes
    app.state.settings = settings
    # Payout bank details are encrypted with these; malformed keys fail start-up here.
    app.state.payout_keys = KeyBox.from_config(
        settings.encryption_keys, settings.encryption_active_kid
    )
    app.state.metrics = metrics.core
    app.state.commerce_metrics = metrics.commerce  # read by the commerce routes
    return app
