"""Pure accounting for the fan-out benchmark: message decoding, per-connection offset tracking
(gaps, reordering), a bounded latency histogram and percentiles. No I/O, no clock: receive times
are arguments.

Frames from the server are one of:
- a single object: a publication `{"channel", "offset", "data"}` or a reply `{"id", "result"}` /
  `{"id", "error"}`;
- a JSON array of such objects (a server that batches several publications into one frame);
- several objects separated by newlines (the other common batching form).

Each publication's `data` carries the publisher's send time (`ts`, wall-clock nanoseconds on the
same machine). Every subscriber of a channel receives the same publication at a given offset, so
the timestamp is decoded once per offset and cached; per delivery only the offset is examined.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import msgspec

BUCKET_NS = 10_000  # latency histogram resolution: 10 µs


class Msg(msgspec.Struct):
    """Any server frame object; unknown fields are ignored, `data` is kept undecoded."""

    channel: str | None = None
    offset: int | None = None
    data: msgspec.Raw = msgspec.Raw()
    id: int | None = None
    result: msgspec.Raw = msgspec.Raw()
    error: msgspec.Raw = msgspec.Raw()


class Payload(msgspec.Struct):
    """The part of a benchmark publication's `data` the generator reads."""

    ts: int
    seq: int = -1


_decode_one = msgspec.json.Decoder(Msg).decode
_decode_many = msgspec.json.Decoder(list[Msg]).decode
_decode_payload = msgspec.json.Decoder(Payload).decode


def decode_frame(payload: bytes) -> list[Msg]:
    """The objects in one text frame (single object, JSON array, or newline-separated objects).
    Raises `msgspec.DecodeError` / `msgspec.ValidationError` on anything else."""
    head = payload.lstrip()[:1]
    if head == b"[":
        return _decode_many(payload)
    body = payload.strip()
    if b"\n" in body:
        # orjson/msgspec never write a raw newline inside a document (strings escape it), so
        # newline-separated objects become one JSON array: a single C-level decode.
        try:
            return _decode_many(b"[" + body.replace(b"\n", b",") + b"]")
        except msgspec.DecodeError:  # blank lines, or pretty-printed documents: slow path
            return [_decode_one(line) for line in body.split(b"\n") if line.strip()]
    return [_decode_one(body)]


class ConnTracker:
    """Offsets seen on one connection's channel.

    The first publication fixes the baseline; afterwards an offset that skips ahead counts the
    skipped offsets as `gaps`, and an offset at or behind the last one counts as a reorder (or
    duplicate) and is not counted as received. Losses before the first publication are found by
    comparing `received` with the number of publications made (see `Summary.missing`).
    """

    __slots__ = ("close_code", "first", "gaps", "last", "received", "reorders")

    def __init__(self) -> None:
        self.last = -1
        self.first = -1
        self.received = 0
        self.gaps = 0
        self.reorders = 0
        self.close_code: int | None = None

    def observe(self, offset: int) -> bool:
        """Account one publication; True if it is new and in order."""
        last = self.last
        if last < 0:
            self.first = offset
        elif offset > last + 1:
            self.gaps += offset - last - 1
        elif offset <= last:
            self.reorders += 1
            return False
        self.last = offset
        self.received += 1
        return True

    def observe_run(self, first: int, last: int) -> int:
        """Account the consecutive offsets first..last (first > self.last) at once, as
        `observe` would one by one; returns how many were new."""
        if self.last < 0:
            self.first = first
        elif first > self.last + 1:
            self.gaps += first - self.last - 1
        self.last = last
        self.received += last - first + 1
        return last - first + 1


class Recorder:
    """Run-wide accounting shared by every connection of one generator process."""

    def __init__(self, *, bucket_ns: int = BUCKET_NS) -> None:
        self.bucket_ns = bucket_ns
        self.hist: dict[int, int] = {}
        self.ts_by_offset: dict[int, int] = {}
        self.delivered = 0
        self.untimed = 0
        self.first_recv_ns = 0
        self.last_recv_ns = 0
        self.recording = True

    def on_frame(self, tracker: ConnTracker, payload: bytes, now_ns: int) -> list[Msg]:
        """Account the publications in one text frame received at `now_ns`; return the other
        objects (command replies) for the caller."""
        msgs = decode_frame(payload)
        others: list[Msg] = []
        hist = self.hist
        cache = self.ts_by_offset
        bucket = self.bucket_ns
        n = 0
        for m in msgs:
            off = m.offset
            if off is None:
                others.append(m)
                continue
            if not tracker.observe(off):
                continue
            n += 1
            ts = cache.get(off)
            if ts is None:
                ts = self._timestamp(m.data)
                cache[off] = ts
            if ts > 0 and self.recording:
                key = (now_ns - ts) // bucket
                hist[key] = hist.get(key, 0) + 1
            elif ts <= 0:
                self.untimed += 1
        self.received(n, now_ns)
        return others

    def received(self, n: int, now_ns: int) -> None:
        """Count `n` new publications received at `now_ns`."""
        if n:
            self.delivered += n
            if not self.first_recv_ns:
                self.first_recv_ns = now_ns
            self.last_recv_ns = now_ns

    @staticmethod
    def _timestamp(data: msgspec.Raw) -> int:
        try:
            return _decode_payload(data).ts
        except (msgspec.DecodeError, msgspec.ValidationError):
            return 0


def percentile(hist: Mapping[int, int], q: float, *, bucket_ns: int = BUCKET_NS) -> float:
    """The `q`-quantile (0 < q <= 1, nearest rank) of a bucketed histogram, in milliseconds, as the
    upper edge of the bucket holding that rank. 0.0 for an empty histogram."""
    if not 0 < q <= 1:
        raise ValueError("q must be in (0, 1]")
    total = sum(hist.values())
    if total == 0:
        return 0.0
    rank = max(1, math.ceil(round(q * total, 9)))  # nearest rank; round() absorbs float noise
    seen = 0
    for key in sorted(hist):
        seen += hist[key]
        if seen >= rank:
            return (key + 1) * bucket_ns / 1e6
    raise AssertionError("unreachable: rank <= total")


@dataclass(frozen=True)
class Summary:
    """Totals over all connections of a run."""

    connections: int
    published: int
    delivered: int
    missing: int
    gaps: int
    reorders: int
    closed: int

    @classmethod
    def of(cls, trackers: Iterable[ConnTracker], published: int) -> Summary:
        connections = delivered = missing = gaps = reorders = closed = 0
        for t in trackers:
            connections += 1
            delivered += t.received
            missing += max(0, published - t.received)
            gaps += t.gaps
            reorders += t.reorders
            closed += t.close_code is not None
        return cls(connections, published, delivered, missing, gaps, reorders, closed)
