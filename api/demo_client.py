"""A small client of Souk's public API, for the terminal commands (`watch`, `bid`) and the demo
crowd: JSON over HTTP (the standard library's urllib, in a thread: a handful of calls, and no
HTTP client among the server's dependencies) and one websocket session (`souk.v1.json`) whose
commands are answered by id while publications queue up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

HTTP_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 10.0
MAX_QUEUED = 1_000  # publications kept for a reader that falls behind; older ones are dropped


class ApiError(Exception):
    """An HTTP problem+json answer, or a websocket error reply."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.status = status
        self.code = code
        self.detail = detail


def _request(method: str, url: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        headers = {"content-type": "application/json", **headers}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - http(s) URLs given by the user
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as answer:  # noqa: S310
            raw = answer.read()
            status = answer.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:  # not JSON (a proxy's error page): keep the start of it as the detail
        return status, {"detail": raw[:200].decode(errors="replace")}


async def http(method: str, url: str, body: Any = None, *, token: str | None = None,
               headers: dict[str, str] | None = None) -> Any:
    """One JSON request; returns the decoded body of a 2xx answer, raises ApiError otherwise
    (and OSError when the server cannot be reached)."""
    sent = dict(headers or {})
    if token:
        sent["authorization"] = f"Bearer {token}"
    status, answer = await asyncio.to_thread(_request, method, url, body, sent)
    if status >= 300:
        problem = answer if isinstance(answer, dict) else {}
        raise ApiError(status, str(problem.get("code", status)), str(problem.get("detail", "")))
    return answer


async def sign_in(base_url: str, email: str, password: str) -> str:
    """An access token for this account (POST /v1/auth/login)."""
    answer = await http("POST", f"{base_url}/v1/auth/login",
                        {"email": email, "password": password})
    return str(answer["access_token"])


def ws_url(base_url: str) -> str:
    if base_url.startswith("https://"):
        return "wss://" + base_url.removeprefix("https://") + "/v1/ws"
    return "ws://" + base_url.removeprefix("http://") + "/v1/ws"


class Session:
    """One websocket connection. `call()` sends a command and waits for its reply;
    `publications()` yields `{"channel", "offset"?, "data"}` messages as they arrive."""

    def __init__(self, ws: ClientConnection, *, keep_publications: bool = True) -> None:
        self._ws = ws
        self._keep = keep_publications
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(MAX_QUEUED)
        self.dropped = 0
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, base_url: str, token: str | None = None, *,
                   keep_publications: bool = True) -> AsyncIterator[Session]:
        """Connect (signed in with `token` when given). `keep_publications=False`: the
        publications of the channels subscribed to are read and dropped (a client that is
        only there to be counted, or to send)."""
        headers = {"authorization": f"Bearer {token}"} if token else None
        async with connect(ws_url(base_url), subprotocols=[websockets.Subprotocol("souk.v1.json")],
                           additional_headers=headers, open_timeout=HTTP_TIMEOUT_S,
                           max_size=2**20) as ws:
            session = cls(ws, keep_publications=keep_publications)
            try:
                yield session
            finally:
                session._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await session._reader

    @property
    def closed(self) -> bool:
        return self._reader.done()

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send `{"id", "op", **fields}`; the reply's `result`, or ApiError for its `error`."""
        if self.closed:
            raise ConnectionError("the websocket is closed")
        self._next_id += 1
        frame_id = self._next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[frame_id] = future
        try:
            await self._ws.send(json.dumps({"id": frame_id, "op": op, **fields}))
            reply = await asyncio.wait_for(future, CALL_TIMEOUT_S)
        except websockets.ConnectionClosed as exc:
            raise ConnectionError("the websocket closed") from exc
        finally:
            self._waiting.pop(frame_id, None)
        if "error" in reply:
            error = reply["error"]
            raise ApiError(0, str(error.get("code")), str(error.get("message", "")))
        result: dict[str, Any] = reply.get("result") or {}
        return result

    async def publications(self) -> AsyncIterator[dict[str, Any]]:
        while (message := await self._queue.get()) is not None:
            yield message

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                text = frame if isinstance(frame, str) else frame.decode()
                for line in text.split("\n"):  # several messages may share a frame
                    if line.strip():
                        self._dispatch(json.loads(line))
        except websockets.ConnectionClosed:
            pass
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError("the websocket closed"))
            if self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait(None)  # ends publications()

    def _dispatch(self, message: dict[str, Any]) -> None:
        frame_id = message.get("id")
        if isinstance(frame_id, int) and frame_id in self._waiting:
            future = self._waiting[frame_id]
            if not future.done():
                future.set_result(message)
            return
        if "channel" in message and self._keep:
            if self._queue.full():  # nobody reads fast enough: keep the newest
                self._queue.get_nowait()
                self.dropped += 1
            self._queue.put_nowait(message)
