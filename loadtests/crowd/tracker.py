"""What a load-test client learns from the frames it receives. Pure (no sockets, no locust):
splitting frames into messages, offset gaps per channel, the server's clock in a publication,
and the seqs an auction publication carries.

Latency sources, honestly named:
- chat messages carry the server's `ts` (ms) stamped when it accepted them;
- order events carry `at` (RFC 3339), the time the change was committed;
- auction publications carry no server time: their delivery is timed from the moment a bidder
  *in the same locust process* sent the bid that produced the seq (`BidClock`), i.e. bid to
  watcher, which includes the bid's own processing. Seqs bid from another process are counted,
  not timed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from auctions.wire import events_of


def messages(frame: bytes | str) -> list[Any]:
    """Every JSON message of one text frame (the server joins several with '\\n')."""
    raw = frame.encode() if isinstance(frame, str) else frame
    return [orjson.loads(line) for line in raw.split(b"\n") if line.strip()]


def channel_kind(channel: str) -> str:
    """`auction:abc` → `auction`, `show:abc:chat` → `show chat` (no ids in stats names)."""
    parts = channel.split(":")
    return parts[0] if len(parts) < 3 else f"{parts[0]} {parts[2]}"


@dataclass
class Gaps:
    """Per-channel offset bookkeeping: offsets are gapless and increasing, so anything else is
    a loss (gap) or a repeat/reorder."""

    last: dict[str, int] = field(default_factory=dict)
    missing: int = 0
    repeats: int = 0

    def start(self, channel: str, offset: int) -> None:
        """The subscribe result's offset: the next publication must be offset + 1."""
        self.last[channel] = offset

    def observe(self, channel: str, offset: int) -> int:
        """Record one publication; returns how many offsets were skipped before it (0 normally,
        -1 for a repeat or one going backwards)."""
        prev = self.last.get(channel)
        if prev is not None and offset <= prev:
            self.repeats += 1
            return -1
        self.last[channel] = offset
        lost = 0 if prev is None else offset - prev - 1
        self.missing += lost
        return lost


def server_time_ms(data: Any) -> float | None:
    """The server's timestamp in a publication's data, in epoch ms, if it has one."""
    if not isinstance(data, dict):
        return None
    ts = data.get("ts")
    if isinstance(ts, int | float) and data.get("type") == "chat":
        return float(ts)
    at = data.get("at")
    if isinstance(at, str):
        try:
            return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() * 1000
        except ValueError:
            return None
    return None


@dataclass
class AuctionWatch:
    """What a watcher knows of one auction from its publications (read with the server's own
    reader, `auctions.wire.events_of`)."""

    price: int | None = None
    leader_id: str | None = None
    ends_at_ms: int | None = None
    outcome: str | None = None
    winner_id: str | None = None
    bids_seen: int = 0

    def apply(self, data: Any) -> list[int]:
        """Fold one publication in; returns the seqs of the bids it carried."""
        if not isinstance(data, dict):
            return []
        seqs = []
        for event in events_of(data):
            kind = event.get("type")
            if kind == "bid":
                seqs.append(int(event["seq"]))
                self.bids_seen += 1
                self.price, self.leader_id = event.get("price"), event.get("leader_id")
                self.ends_at_ms = event.get("ends_at") or self.ends_at_ms
            elif kind == "extended":
                self.ends_at_ms = event.get("ends_at") or self.ends_at_ms
            elif kind == "bid_voided":
                self.price, self.leader_id = event.get("price"), event.get("leader_id")
            elif kind in ("closed", "cancelled"):
                self.outcome = str(event.get("outcome", kind))
                self.winner_id = event.get("winner_id")
        return seqs


class BidClock:
    """Send times (monotonic s) of bids from this process, by (auction, seq): the watcher side
    times an auction publication against it. The seq is known only when the bid's answer comes,
    and a watcher may receive the publication before that answer is read, so receipts of
    unknown seqs wait (bounded) until `record` resolves them. Oldest entries are dropped."""

    def __init__(self, size: int = 5_000) -> None:
        self._sent: OrderedDict[tuple[str, int], float] = OrderedDict()
        self._early: OrderedDict[tuple[str, int], list[float]] = OrderedDict()
        self._size = size

    def record(self, auction_id: str, seq: int, sent_at: float) -> list[float]:
        """A local bid got `seq`; returns the delays (s) of receipts that came before."""
        key = (auction_id, seq)
        self._sent[key] = sent_at
        if len(self._sent) > self._size:
            self._sent.popitem(last=False)
        return [t - sent_at for t in self._early.pop(key, [])]

    def arrived(self, auction_id: str, seq: int, now: float) -> float | None:
        """A watcher received `seq` at `now`: the delay since its bid was sent, or None when
        that is not known yet (kept for `record`)."""
        key = (auction_id, seq)
        sent = self._sent.get(key)
        if sent is not None:
            return now - sent
        self._early.setdefault(key, []).append(now)
        if len(self._early) > self._size:
            self._early.popitem(last=False)
        return None
