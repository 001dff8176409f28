"""HTTP routes of tracking and dispatch (CONTRACT.md "Rider tracking and dispatch").

    POST   /v1/tracking/devices              rider: a device key, shown once
    GET    /v1/tracking/devices              rider: theirs (admin: ?rider_id=)
    DELETE /v1/tracking/devices/{id}         that rider or an admin: revoke
    GET|POST /v1/tracking/osmand             the phones (OsmAnd: query, form or JSON)
    PUT    /v1/riders/me/availability        rider: available | offline
    GET    /v1/tracking/riders/online        admin: riders heard from lately, last positions
    GET    /v1/tracking/riders/{id}/track    admin (or that rider): recent positions
    GET    /v1/orders/{id}/track             the order's buyer (or an admin): the delivery
    POST   /v1/orders/{id}/dispatch          the order's seller or an admin
    POST   /v1/dispatch/offers/{id}/accept   the offered rider
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import parse_qsl

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.auth import Role
from core.context import require
from core.errors import AppError, Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from core.http import JSONResponse, Schema, decode_json, endpoint, parse_json, read_body
from core.ids import parse_uuid
from tracking import history, osmand
from tracking.service import Tracking

OSMAND_MAX_BODY = 65_536
MAX_TRACK = 5_000
MAX_MINUTES = 7 * 24 * 60
MAX_ONLINE = 500
Lat = Annotated[float, msgspec.Meta(ge=-85.05112878, le=85.05112878)]
Lon = Annotated[float, msgspec.Meta(ge=-180, le=180)]


class DeviceUnknown(AppError):
    status = 403
    code = "device_unknown"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Unknown or revoked device key",
        "ar": "مفتاح جهاز غير معروف أو ملغى",
    }


class MalformedReport(AppError):
    status = 400
    code = "malformed_report"
    titles: ClassVar[Mapping[str, str]] = {"en": "Not an OsmAnd report", "ar": "ليس تقرير OsmAnd"}


class TooManyDevices(Conflict):
    code = "too_many_devices"
    titles: ClassVar[Mapping[str, str]] = {
        "en": "Too many device keys",
        "ar": "مفاتيح أجهزة كثيرة جدًا",
    }


class NewDevice(Schema):
    label: Annotated[str, msgspec.Meta(max_length=100)] | None = None


class Availability(Schema):
    status: Literal["available", "offline"]


class Point(Schema):
    lat: Lat
    lon: Lon


class DispatchBody(Schema):
    pickup: Point | None = None
    radius_m: Annotated[int, msgspec.Meta(ge=50, le=1_000_000)] | None = None


def tracking_of(request: Request) -> Tracking:
    svc: Tracking = request.state.tracking
    return svc


def _id(request: Request, name: str) -> uuid.UUID:
    value = parse_uuid(request.path_params[name])
    if value is None:
        raise NotFound()
    return value


def _device_view(d: Any) -> dict[str, Any]:
    return {"id": d.id, "label": d.label, "created_at": d.created_at, "revoked_at": d.revoked_at}


def _track_view(rows: list[Any]) -> list[dict[str, Any]]:
    return [{"lat": r["lat"], "lon": r["lon"], "ts": int(r["ts"].timestamp() * 1000),
             "speed": r["speed"], "heading": r["heading"], "accuracy": r["accuracy"]}
            for r in rows]


@endpoint("Issue a device key for the OsmAnd protocol (shown once)", tags=("tracking",),
          body=NewDevice, responses={201: None}, auth=True, roles=("rider",),
          errors=(401, 403, 409, 422))
async def create_device(request: Request) -> Response:
    who = await require(request, Role.RIDER)
    raw = await read_body(request, limit=4096)
    body = decode_json(raw, NewDevice) if raw.strip() else NewDevice()
    made = await tracking_of(request).devices.issue(who.user_id, body.label)
    if made is None:
        raise TooManyDevices()
    device, key = made
    return JSONResponse({**_device_view(device), "key": key}, status_code=201)


@endpoint("Device keys of a rider (never the keys themselves)", tags=("tracking",),
          auth=True, roles=("rider", "admin"), errors=(401, 403, 422),
          query={"rider_id": "whose (default: the caller's own); only admins may name another"})
async def list_devices(request: Request) -> Response:
    who = await require(request, Role.RIDER, Role.ADMIN)
    rider = who.user_id
    raw = request.query_params.get("rider_id", "")
    if raw:
        named = parse_uuid(raw)
        if named is None:
            raise ValidationFailed([FieldError("rider_id", "must be a UUID")])
        if who.role is not Role.ADMIN and named != who.user_id:
            raise Forbidden()
        rider = named
    devices = await tracking_of(request).devices.list(rider)
    return JSONResponse({"items": [_device_view(d) for d in devices]})


@endpoint("Revoke a device key (its rider or an admin)", tags=("tracking",),
          responses={204: None}, auth=True, roles=("rider", "admin"), errors=(401, 403, 404))
async def revoke_device(request: Request) -> Response:
    who = await require(request, Role.RIDER, Role.ADMIN)
    svc = tracking_of(request)
    device = await svc.devices.get(_id(request, "device_id"))
    if device is None or (who.role is not Role.ADMIN and device.rider_id != who.user_id):
        raise NotFound()
    await svc.devices.revoke(device.id)
    return Response(status_code=204)


async def _report(request: Request) -> osmand.Report:
    now_ms = int(time.time() * 1000)
    query = dict(request.query_params)
    body = await read_body(request, limit=OSMAND_MAX_BODY) if request.method == "POST" else b""
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    try:
        if body.strip() and (media == "application/json" or body.lstrip()[:1] == b"{"):
            return osmand.from_json(body, now_ms, query)
        if body.strip():  # a form body (the media type is not always sent)
            query.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return osmand.from_params(query, now_ms)
    except osmand.OsmAndError as exc:
        raise MalformedReport(str(exc)) from None


OSMAND_QUERY = {
    "id": "the device key (`deviceid` is an alias); required unless a JSON body carries it",
    "deviceid": "alias of `id`",
    "lat": "degrees; with `lon`, required unless `location` (or a body) gives the position",
    "lon": "degrees",
    "location": "`lat,lon` in one parameter (replaces lat and lon)",
    "timestamp": "unix seconds (fractions allowed), unix ms, ISO 8601 or `yyyy-MM-dd HH:mm:ss`"
                 " (UTC); absent means the server's time",
    "speed": "knots; negative means unknown", "bearing": "degrees; negative means unknown",
    "heading": "alias of `bearing`", "accuracy": "metres; negative means unknown",
    "altitude": "metres",
}
_OSMAND = ("Report a position with the OsmAnd protocol (Traccar Client); 200 for a known "
           "device key even when the fix is filtered out; other fields are ignored")


@endpoint(_OSMAND + ": every field in the query string", tags=("tracking",),
          responses={200: None}, errors=(400, 403), query=OSMAND_QUERY)
async def osmand_get(request: Request) -> Response:
    return await _osmand(request)


@endpoint(_OSMAND + ": the query string's fields in the query string (Traccar Client up to 8, "
          "empty body) or in an application/x-www-form-urlencoded body (the media type may be "
          "missing), or the JSON body of Traccar Client 9+ (`device_id`, `location`: one fix or "
          "a batch of up to 100) with the key possibly in the query",
          tags=("tracking",), responses={200: None}, errors=(400, 403, 413), query=OSMAND_QUERY)
async def osmand_post(request: Request) -> Response:
    return await _osmand(request)


async def _osmand(request: Request) -> Response:
    svc = tracking_of(request)
    try:
        report = await _report(request)
    except MalformedReport:
        svc.metrics.refused.labels("malformed").inc()
        raise
    rider = await svc.devices.rider_of(report.key)
    if rider is None:
        svc.metrics.refused.labels("unknown_device").inc()
        raise DeviceUnknown()
    await svc.ingest.report(rider, report.fixes, "osmand")
    return Response(status_code=200)


@endpoint("Go available for jobs or offline (rider)", tags=("tracking",), body=Availability,
          auth=True, roles=("rider",), errors=(401, 403, 415, 422))
async def set_availability(request: Request) -> Response:
    who = await require(request, Role.RIDER)
    body = await parse_json(request, Availability, limit=1024)
    svc = tracking_of(request)
    available = body.status == "available"
    await svc.pool.execute(
        """INSERT INTO tracking_riders (rider_id, available) VALUES ($1, $2)
           ON CONFLICT (rider_id) DO UPDATE SET available = $2, updated_at = now()""",
        who.user_id, available)
    await svc.live.set_available(who.user_id, available)
    return JSONResponse({"status": body.status})


def _int_query(request: Request, name: str, default: int, high: int) -> int:
    """An integer query parameter in 1..high; absent or empty means `default`."""
    raw = request.query_params.get(name, "")
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9 and 1 <= int(raw) <= high):
        raise ValidationFailed([FieldError(name, f"must be an integer in 1..{high}")])
    return int(raw)


def _since(request: Request) -> tuple[datetime, int]:
    minutes = _int_query(request, "minutes", 60, MAX_MINUTES)
    return datetime.now(UTC) - timedelta(minutes=minutes), _int_query(request, "limit", 1000,
                                                                       MAX_TRACK)


@endpoint("A rider's recent positions (admins, or the rider)", tags=("tracking",), auth=True,
          roles=("admin", "rider"), errors=(401, 403, 404, 422),
          query={"minutes": "how far back, 1..10080 (default 60)",
                 "limit": "1..5000 (default 1000)"})
async def rider_track(request: Request) -> Response:
    who = await require(request, Role.ADMIN, Role.RIDER)
    rider = _id(request, "rider_id")
    if who.role is not Role.ADMIN and rider != who.user_id:
        raise Forbidden()
    since, limit = _since(request)
    rows = await history.track(tracking_of(request).pool, rider, since=since, until=None,
                               limit=limit)
    return JSONResponse({"rider_id": rider, "positions": _track_view(rows)})


@endpoint("Riders online: heard from within TRACKING_OFFLINE_S, most recently heard first, "
          "with their last position (admins)", tags=("tracking",), auth=True, roles=("admin",),
          errors=(401, 403, 422), query={"limit": f"1..{MAX_ONLINE} (default 200)"})
async def riders_online(request: Request) -> Response:
    await require(request, Role.ADMIN)
    svc = tracking_of(request)
    limit = _int_query(request, "limit", 200, MAX_ONLINE)
    total, riders, names = await svc.riders_online(int(time.time() * 1000), limit)
    return JSONResponse({
        "offline_after_s": svc.settings.tracking_offline_s, "total": total,
        "items": [{"rider_id": r.rider_id, "display_name": names.get(r.rider_id),
                   "available": r.available, "lat": r.last.lat, "lon": r.last.lon,
                   "ts": r.last.ts_ms, "seen": r.seen_ms, "speed": r.last.speed_mps,
                   "heading": r.last.heading} for r in riders]})


@endpoint("The rider's track during this order's delivery (its buyer, or an admin)",
          tags=("tracking",), auth=True, errors=(401, 404, 422),
          query={"limit": "1..5000 (default 1000)"})
async def order_track(request: Request) -> Response:
    who = await require(request)
    svc = tracking_of(request)
    order_id = _id(request, "order_id")
    segment = await svc.orders.segment(order_id)
    if who.role is not Role.ADMIN and (
        segment is None or who.user_id != segment.buyer_id or segment.end is not None
    ):
        raise NotFound()  # buyers see the active delivery's segment only
    if segment is None:
        raise NotFound()
    limit = _int_query(request, "limit", 1000, MAX_TRACK)
    rows = await history.track(svc.pool, segment.rider_id, since=segment.start,
                               until=segment.end, limit=limit)
    return JSONResponse({"order_id": order_id, "rider_id": segment.rider_id,
                         "positions": _track_view(rows)})


@endpoint("Offer the order to the nearest available riders (its seller or an admin)",
          tags=("dispatch",), body=DispatchBody, responses={202: None}, auth=True,
          roles=("seller", "admin"), errors=(401, 403, 404, 409, 415, 422))
async def dispatch(request: Request) -> Response:
    who = await require(request, Role.SELLER, Role.ADMIN)
    svc = tracking_of(request)
    order_id = _id(request, "order_id")
    raw = await read_body(request, limit=4096)
    body = decode_json(raw, DispatchBody) if raw.strip() else DispatchBody()
    facts = await svc.orders.facts(svc.pool, order_id)
    if facts is None or (who.role is not Role.ADMIN and facts.seller_id != who.user_id):
        raise NotFound()
    given = (body.pickup.lat, body.pickup.lon) if body.pickup else None
    pickup = await svc.dispatcher.pickup_of(facts.seller_id, given)
    offers = await svc.dispatcher.dispatch(order_id, pickup=pickup, radius_m=body.radius_m)
    return JSONResponse({"offers": [{"id": o.id, "rider_id": o.rider_id} for o in offers]},
                        status_code=202)


@endpoint("Accept a dispatch offer (the offered rider); the first accept wins",
          tags=("dispatch",), auth=True, roles=("rider",), errors=(401, 403, 404, 409))
async def accept_offer(request: Request) -> Response:
    who = await require(request, Role.RIDER)
    svc = tracking_of(request)
    order_id = await svc.dispatcher.accept(_id(request, "offer_id"), who.user_id)
    return JSONResponse({"order_id": order_id, "rider_id": who.user_id})


routes = [
    Route("/v1/tracking/devices", create_device, methods=["POST"]),
    Route("/v1/tracking/devices", list_devices, methods=["GET"]),
    Route("/v1/tracking/devices/{device_id}", revoke_device, methods=["DELETE"]),
    Route("/v1/tracking/osmand", osmand_get, methods=["GET"]),
    Route("/v1/tracking/osmand", osmand_post, methods=["POST"]),
    Route("/v1/riders/me/availability", set_availability, methods=["PUT"]),
    Route("/v1/tracking/riders/online", riders_online, methods=["GET"]),
    Route("/v1/tracking/riders/{rider_id}/track", rider_track, methods=["GET"]),
    Route("/v1/orders/{order_id}/track", order_track, methods=["GET"]),
    Route("/v1/orders/{order_id}/dispatch", dispatch, methods=["POST"]),
    Route("/v1/dispatch/offers/{offer_id}/accept", accept_offer, methods=["POST"]),
]
