"""The websocket endpoint `GET /v1/ws`: the I/O shell around `protocol.Session` and the hub.

It negotiates the subprotocol, authenticates (an `Authorization: Bearer` header on the upgrade
or a first `auth` command), then reads commands one at a time and answers each, in order.
Other packages add ops as `OpHandler`s (`Gateway.add_op`: api/app.py injects the auctions'
`bid` and tracking's `location`) and per-kind rules as policies, so this package imports no
domain.

Close codes: 4000 server shutting down (reconnect elsewhere), 4005 token expired (refresh it,
reconnect), 4008 too slow, 4010 channel state lost (resubscribe with `since`), 4029 command
flood, 1009 frame too large, 4501 bad or revoked token (terminal); see revocation.py.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response
from starlette.websockets import WebSocket

from core.auth import Principal
from core.errors import AppError, ServiceUnavailable, TokenInvalid, Unauthorized
from core.redis_client import REDIS_ERRORS
from realtime import wire
from realtime.channels import (
    ANONYMOUS,
    Channel,
    ChannelForbidden,
    Kind,
    Subject,
    can_subscribe,
    check_publish,
    needs_parties,
)
from realtime.hub import CLOSE_BAD_TOKEN, CLOSE_FLOOD, Client, Hub
from realtime.metrics import HubMetrics
from realtime.origins import origin_allowed
from realtime.presence import Presence
from realtime.protocol import (
    Auth,
    Command,
    CommandError,
    Custom,
    Limits,
    MalformedFrame,
    Ping,
    Publish,
    Session,
    Subscribe,
    Unsubscribe,
    Verdict,
    error_reply,
    parse_command,
    reply,
)
from realtime.revocation import Guard
from realtime.transport import AsgiSink, make_sink
from realtime.wire import Codec, FrameError

log = logging.getLogger("souk.realtime.ws")
# A dependency failed: the command is answered `service_unavailable` (temporary).
_UNAVAILABLE: tuple[type[Exception], ...] = (*REDIS_ERRORS, TimeoutError)

CLOSE_TOO_BIG = 1009

VerifyToken = Callable[[str], Awaitable[Principal]]
OpHandler = Callable[[Principal | None, dict[str, Any]], Awaitable[dict[str, Any]]]
OrderParties = Callable[[uuid.UUID], Awaitable[set[uuid.UUID]]]
# Per-kind rules: may raise AppError; a publish policy returns the data to publish.
SubscribePolicy = Callable[[Subject, Channel], Awaitable[None]]
PublishPolicy = Callable[[Subject, Channel, Any], Awaitable[Any]]


@dataclass
class Gateway:
    """Everything the endpoint needs, built once per process in the lifespan."""

    hub: Hub
    verify: VerifyToken
    metrics: HubMetrics
    limits: Limits = field(default_factory=Limits)
    max_frame_bytes: int = 65_536
    order_parties: OrderParties | None = None
    ops: dict[str, OpHandler] = field(default_factory=dict)
    subscribe_policies: dict[Kind, SubscribePolicy] = field(default_factory=dict)
    publish_policies: dict[Kind, PublishPolicy] = field(default_factory=dict)
    presence: Presence = field(default_factory=Presence)
    guard: Guard = field(default_factory=Guard)  # token expiry and revocation (revocation.py)
    origins: frozenset[str] = frozenset()  # browser Origins accepted (origins.py; empty: any)

    def add_op(self, op: str, handler: OpHandler) -> None:
        """Register a websocket op handled by another package. Register before serving."""
        if op in ("auth", "subscribe", "unsubscribe", "publish", "ping"):
            raise ValueError(f"op {op!r} is built in")
        self.ops[op] = handler


class _Conn:
    """Per-connection state of the endpoint."""

    __slots__ = ("client", "codec", "principal", "session")

    def __init__(self, client: Client, codec: Codec, session: Session) -> None:
        self.client = client
        self.codec = codec
        self.session = session
        self.principal: Principal | None = None

    def send(self, message: Mapping[str, Any]) -> None:
        self.client.send(wire.encode(self.codec, message))


def _subject(p: Principal) -> Subject:
    return Subject(p.user_id, p.role.value)


def websocket_endpoint(websocket: WebSocket) -> Awaitable[None]:
    """The `/v1/ws` handler; the Gateway comes from the lifespan state. Returns `serve`'s
    coroutine instead of awaiting it: one frame less on every open connection's stack."""
    gateway: Gateway = websocket.state.ws_gateway
    return serve(gateway, websocket)


async def serve(gw: Gateway, websocket: WebSocket) -> None:
    offered = list(websocket.scope.get("subprotocols") or [])
    codec = wire.pick_codec(offered)
    if codec is None:
        gw.metrics.connects.labels("bad_subprotocol").inc()
        await websocket.close(1002)
        return
    origin = next((v.decode("latin-1") for k, v in websocket.scope["headers"]
                   if k == b"origin"), None)
    if not origin_allowed(origin, gw.origins):
        gw.metrics.connects.labels("bad_origin").inc()
        await websocket.send_denial_response(Response("origin not allowed", status_code=403))
        return
    if gw.hub.draining or gw.hub.full():
        gw.metrics.connects.labels("refused").inc()
        await websocket.send_denial_response(
            Response("server busy", status_code=503, headers={"Retry-After": "2"})
        )
        return
    principal: Principal | None = None
    bad_token: AppError | None = None
    # Read from the raw scope (not `websocket.headers`, which would keep a copy alive).
    auth_header = next((v.decode("latin-1") for k, v in websocket.scope["headers"]
                        if k == b"authorization"), None)
    if auth_header:
        try:
            scheme, _, token = auth_header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise TokenInvalid("Use 'Authorization: Bearer <token>'.")
            principal = await gw.verify(token.strip())
        except AppError as exc:
            bad_token = exc
    await websocket.accept(subprotocol=codec.value if offered else None)
    websocket.scope["headers"] = []  # read above; not kept for the connection's lifetime
    sink = make_sink(websocket, codec, gw.metrics)
    client = gw.hub.connect(sink, codec, _subject(principal) if principal else ANONYMOUS)
    conn = _Conn(client, codec, Session(gw.limits, now=time.monotonic()))
    if principal is not None:
        conn.principal = principal
        conn.session.authenticated(client.subject)
        gw.guard.track(client, principal)
    gw.metrics.connects.labels("accepted").inc()
    try:
        if bad_token is not None:
            conn.send(error_reply(None, bad_token))
            client.close(CLOSE_BAD_TOKEN, bad_token.code)
            return
        await _read_loop(gw, websocket, conn)
    finally:
        gw.guard.forget(client)
        for name in list(client.channels):
            channel = _known(name)
            if channel is not None:
                gw.presence.left(channel, client)
        gw.hub.disconnect(client)
        if isinstance(sink, AsgiSink):
            sink.stop()


def _known(name: str) -> Channel | None:
    from realtime.channels import BadChannel, parse_channel

    try:
        return parse_channel(name)
    except BadChannel:
        return None


async def _read_loop(gw: Gateway, websocket: WebSocket, conn: _Conn) -> None:
    client = conn.client
    # No local keeps the last message or command alive while waiting for the next one (an
    # idle connection would hold them for its lifetime).
    while not client.closed and await _on_message(gw, conn, await websocket.receive()):
        pass


async def _on_message(gw: Gateway, conn: _Conn, message: Mapping[str, Any]) -> bool:
    """Answer one received message; False when the connection is over."""
    client = conn.client
    if message["type"] == "websocket.disconnect":
        return False
    raw: str | bytes | None = message.get("text")
    if raw is None:
        raw = message.get("bytes")
    if raw is None:
        return True
    if conn.principal is not None and not gw.guard.still_valid(client, conn.principal,
                                                               time.time()):
        return False
    if len(raw) > gw.max_frame_bytes:
        gw.metrics.commands.labels("?", "too_big").inc()
        client.close(CLOSE_TOO_BIG, "frame too large")
        return False
    verdict = conn.session.admit(time.monotonic())
    if verdict is Verdict.FLOOD:
        gw.metrics.commands.labels("?", "flood").inc()
        client.close(CLOSE_FLOOD, "too many commands")
        return False
    try:
        obj = wire.decode(conn.codec, raw)
    except FrameError as exc:
        gw.metrics.commands.labels("?", "malformed").inc()
        conn.send(error_reply(None, MalformedFrame(str(exc))))
        return True
    if verdict is Verdict.LIMITED:
        gw.metrics.commands.labels("?", "rate_limited").inc()
        frame_id = obj.get("id") if isinstance(obj, dict) else None
        conn.send(error_reply(frame_id if isinstance(frame_id, int) else None,
                              conn.session.rate_limited()))
        return True
    try:
        cmd = parse_command(obj, custom_ops=gw.ops.keys())
    except CommandError as exc:
        gw.metrics.commands.labels("?", exc.error.code).inc()
        conn.send(error_reply(exc.id, exc.error))
        return True
    await _run(gw, conn, cmd)
    return True


_OP_NAMES: dict[type, str] = {Auth: "auth", Subscribe: "subscribe", Unsubscribe: "unsubscribe",
                              Publish: "publish", Ping: "ping"}


async def _run(gw: Gateway, conn: _Conn, cmd: Command) -> None:
    op = cmd.op if isinstance(cmd, Custom) else _OP_NAMES[type(cmd)]
    try:
        if isinstance(cmd, Subscribe):
            await _subscribe(gw, conn, cmd)  # sends its own reply (ordering with publications)
        else:
            conn.send(reply(cmd.id, await _handle(gw, conn, cmd)))
        gw.metrics.commands.labels(op, "ok").inc()
    except AppError as exc:
        gw.metrics.commands.labels(op, exc.code).inc()
        conn.send(error_reply(cmd.id, exc))
        if isinstance(cmd, Auth) and isinstance(exc, Unauthorized):
            conn.client.close(CLOSE_BAD_TOKEN, exc.code)
    except _UNAVAILABLE as exc:
        gw.metrics.commands.labels(op, "unavailable").inc()
        log.warning("websocket command failed", extra={"op": op, "error": repr(exc)})
        conn.send(error_reply(cmd.id, ServiceUnavailable()))
    except Exception:
        gw.metrics.commands.labels(op, "internal_error").inc()
        log.exception("websocket command crashed", extra={"op": op})
        conn.send(error_reply(cmd.id, AppError()))


async def _handle(gw: Gateway, conn: _Conn, cmd: Command) -> dict[str, Any]:
    session = conn.session
    if isinstance(cmd, Ping):
        return {}
    if isinstance(cmd, Auth):
        session.check_auth()
        principal = await gw.verify(cmd.token)
        conn.principal = principal
        session.authenticated(_subject(principal))
        conn.client.subject = session.subject
        gw.guard.track(conn.client, principal)
        return {"user_id": str(principal.user_id), "role": principal.role.value}
    if isinstance(cmd, Unsubscribe):
        session.check_unsubscribe(cmd.channel)
        gw.hub.unsubscribe(conn.client, cmd.channel)
        session.remove_subscription(cmd.channel)
        gw.presence.left(cmd.channel, conn.client)
        return {}
    if isinstance(cmd, Publish):
        check_publish(session.subject, cmd.channel)
        data = cmd.data
        policy = gw.publish_policies.get(cmd.channel.kind)
        if policy is not None:
            data = await policy(session.subject, cmd.channel, data)
        position = await gw.hub.publish(cmd.channel.name, data)
        assert position is not None  # durable publications always have one
        return {"epoch": position.epoch, "offset": position.offset}
    if isinstance(cmd, Custom):
        return await gw.ops[cmd.op](conn.principal, cmd.frame)
    raise AssertionError(f"unhandled command {cmd!r}")


async def _subscribe(gw: Gateway, conn: _Conn, cmd: Subscribe) -> None:
    session, channel = conn.session, cmd.channel
    session.check_subscribe(channel)
    parties: set[uuid.UUID] | None = None
    if needs_parties(channel, session.subject) and gw.order_parties is not None:
        assert channel.id is not None
        parties = await gw.order_parties(channel.id)
    if not can_subscribe(session.subject, channel, parties=parties):
        raise ChannelForbidden()
    policy = gw.subscribe_policies.get(channel.kind)
    if policy is not None:
        await policy(session.subject, channel)
    result = await gw.hub.subscribe(conn.client, channel, cmd.since)
    session.add_subscription(channel)
    body = {"epoch": result.position.epoch, "offset": result.position.offset,
            "recovered": result.recovered}
    conn.client.send(wire.subscribe_reply(conn.codec, cmd.id, body, result.publications))
    gw.hub.release(conn.client, channel, result)
    gw.presence.joined(channel, conn.client)
