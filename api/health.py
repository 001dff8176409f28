"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

import asyncio

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.context import runtime
from core.http import JSONResponse, endpoint
from core.metrics import CONTENT_TYPE

_CHECK_TIMEOUT_S = 2.0


class Health(msgspec.Struct):
    status: str
    checks: dict[str, str] = {}


@endpoint("Process is alive", tags=("ops",), responses={200: Health})
async def healthz(request: Request) -> Response:
    return JSONResponse(Health("ok"))


async def _check(awaitable: object) -> str:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):  # not wait_for: see core/outbox.py
            await awaitable  # type: ignore[misc]
    except Exception as exc:  # any failure means "not ready"; say which kind
        return f"error: {type(exc).__name__}"
    return "ok"


@endpoint("PostgreSQL and Redis are reachable", tags=("ops",), responses={200: Health, 503: Health})
async def readyz(request: Request) -> Response:
    rt = runtime(request)
    postgres, redis = await asyncio.gather(
        _check(rt.pool.fetchval("SELECT 1")), _check(rt.redis.ping())
    )
    ok = postgres == "ok" and redis == "ok"
    body = Health("ok" if ok else "unavailable", {"postgres": postgres, "redis": redis})
    return JSONResponse(body, status_code=200 if ok else 503)


@endpoint("Prometheus metrics", tags=("ops",), responses={200: None})
async def metrics(request: Request) -> Response:
    return Response(runtime(request).metrics.render(), media_type=CONTENT_TYPE)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
