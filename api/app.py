"""The application factory: `uvicorn --factory api.app:create_app`.

`create_app()` reads settings (failing loudly), and its lifespan opens, in order: the JWT key
ring, the PostgreSQL pool (applying pending migrations under a lock unless turned off), Redis,
the rate limiter, the outbox relay, the real-time hub, the commerce jobs and the auctions. It
exposes them on the request state (`runtime`, `hub`, `ws_gateway`, `presence`, `auctions`) and
closes everything in reverse order on shutdown.

This is the only place that connects the domains: the hub gets the orders' parties and the
auctions' `bid` op; the auctions get the hub, the ledger, checkout and the catalog through the
adapters in `api.auction_ports`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

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
from api.realtime_wiring import open_realtime
from api.shows import routes as shows
from api.streaming_wiring import open_streaming
from api.tracking_ports import TrackedOrders, hub_publisher, order_events_handler
from api.web import routes as web_pages
from auctions import routes as auction_routes
from auctions.metrics import AuctionMetrics
from auctions.runtime import Routing, running_auctions, settings_from
from core import db
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
from realtime import routes as realtime_routes
from realtime.endpoint import websocket_endpoint
from realtime.metrics import HubMetrics
from realtime.transport import WebsocketShortcut
from streaming import routes as streaming_routes
from streaming.metrics import StreamingMetrics
from tracking import routes as tracking_routes
from tracking import service as tracking_service
from tracking.metrics import TrackingMetrics

VERSION = "0.1.0"
LEDGER_GAUGES = "ledger_gauges"
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
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def commerce_jobs(
    settings: Settings, rt: Runtime, metrics: CommerceMetrics, ledger_metrics: LedgerMetrics,
) -> list[tuple[str, Any]]:
    """The commerce background loops (reservation expiry, seller settlement, the ledger's
    gauges) as coroutines."""
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
    titles = {"en": "Upgrade required", "ar": "يلزم الترقية"}
    details = {"en": "This endpoint speaks websocket only (Upgrade: websocket).",
               "ar": "هذه النقطة تعمل عبر websocket فقط."}

    def __init__(self) -> None:
        super().__init__(headers={"Upgrade": "websocket"})


@endpoint("The websocket endpoint (see realtime/README.md); plain HTTP gets 426",
          tags=("realtime",), responses={101: None}, errors=(426,))
async def websocket_upgrade_required(request: Request) -> Response:
    raise UpgradeRequired()


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the ASGI application. Reads the environment when `settings` is None."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, json=settings.log_json)
    BoundedHttpToolsProtocol.configure(
        max_header_bytes=settings.http_max_header_bytes, max_headers=settings.http_max_headers,
        header_timeout_s=float(settings.http_header_timeout_s),
    )
    metrics = Metrics()
    commerce_metrics = CommerceMetrics(metrics.registry)
    ledger_metrics = LedgerMetrics(metrics.registry)
    hub_metrics = HubMetrics(metrics.registry)
    auction_metrics = AuctionMetrics(metrics.registry)
    tracking_metrics = TrackingMetrics(metrics.registry)
    streaming_metrics = StreamingMetrics(metrics.registry)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with AsyncExitStack() as stack:
            rt = await stack.enter_async_context(open_runtime(settings, metrics))
            # HTTP top-ups post through the ledger's group commit (api/ledger/batcher.py)
            ledger_batcher = LedgerBatcher(rt.pool)
            stack.push_async_callback(ledger_batcher.aclose)
            stack.enter_context(health.serve_metrics(settings, metrics))
            relay = OutboxRelay(
                settings.database_url, rt.pool, schema=settings.database_schema, metrics=metrics
            )
            app.state.relay = relay
            realtime = await stack.enter_async_context(open_realtime(rt, relay, hub_metrics))
            realtime.gateway.order_parties = order_parties_of(rt)
            tracking = await stack.enter_async_context(tracking_service.build(
                settings, rt.pool, rt.redis, TrackedOrders(rt.pool),
                hub_publisher(realtime.hub), tracking_metrics,
            ).running())
            relay.add_handler(order_events_handler(tracking))
            realtime.gateway.add_op("location", tracking.location_op())
            await stack.enter_async_context(running(relay.run(), "outbox-relay"))
            for name, task in commerce_jobs(settings, rt, commerce_metrics, ledger_metrics):
                await stack.enter_async_context(running(task, name))
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
                                    auction_metrics.bids_routed.labels(outcome).inc()))
                if settings.auction_routing else None,
                durable=not settings.auction_ack_before_commit,
                metrics=auction_metrics,
            ))
            realtime.gateway.add_op("bid", auctions.bid_op())
            streaming = await stack.enter_async_context(
                open_streaming(rt, realtime.hub, streaming_metrics))
            gc_pauses = GcPauses(metrics.registry)
            stack.callback(gc_pauses.close)
            settle_after_startup(settings.gc_gen0_threshold)
            log.info("souk started", extra={"settings": settings.safe_dict()})
            yield {
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
            log.info("souk stopping")

    routes: list[BaseRoute] = [*health.routes, *accounts.routes, *accounts_admin.routes]
    routes += [*ledger.routes, *ledger_admin.routes]
    routes += [
        *catalog.routes,
        *cart.routes,
        *checkout.make_routes(commerce_metrics),
        *orders.make_routes(commerce_metrics),
        *admin.make_routes(commerce_metrics),
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

    @endpoint("This OpenAPI document", tags=("ops",), responses={200: None})
    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    routes.append(Route("/openapi.json", openapi, methods=["GET"]))
    routes += web_pages.build_routes()  # the web pages (api/web/)
    document = build_document(routes, version=VERSION,
                              currencies=sorted(settings.accepted_currencies))

    app = Starlette(
        routes=routes,
        middleware=[
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
        ],
        exception_handlers=problems.handlers,
        lifespan=lifespan,
    )
    app.state.max_body_bytes = settings.max_body_bytes
    app.state.settings = settings
    # Payout bank details are encrypted with these; malformed keys fail start-up here.
    app.state.payout_keys = KeyBox.from_config(
        settings.encryption_keys, settings.encryption_active_kid
    )
    app.state.metrics = metrics
    return app
