"""Bid load through the whole product path: real uvicorn processes, websocket `bid` ops, the
PostgreSQL group commit and the realtime hub fanning accepted bids out to watchers.

One hot auction; W watching websocket connections (the fast raw-asyncio client of
loadtests/fanout, one process); B bidders (`Commander`, the same kind of raw-asyncio client, in
their own process(es)) making R bid attempts/s in all (open loop; 0 = closed loop, each bidder
sends its next bid when the previous one is answered). Connections are spread round-robin over
the server processes. Reports:
- ack latency: bidder's send of the `bid` op → its reply (p50/p95/p99/max), by outcome, and
  `ack_ms_steady`: every bid sent after the first 2 s (`WARM_UP_S`; the auction's first
  burst pays cold caches and connection-pool growth), the window delivery is measured on;
- delivery latency: the bid's `placed_at` in PostgreSQL (the sequencer's DB clock, same host
  clock) → arrival at a watcher of the publication carrying it (one per commit: a bid event or
  a batch, see auctions/wire.py), for every bid delivered to a sample of watcher connections
  (1 in `--sample`); missing/gaps/reorders (of publications) over all of them;
- the record: accepted seqs gapless in PostgreSQL, attempts written;
- each server's CPU time (user + system) while bidding, and per attempt
  (`server_cpu_ms_per_attempt`): steadier than latency for comparing code on a box the load
  generators share.
Isolated in a fresh schema and Redis prefix with a throwaway JWT key; drops both at the end.
Targets 127.0.0.1 only; every run is bounded (`--seconds` <= 30) and stops by itself.

    export DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0
    flock /tmp/souk-bench.lock .venv/bin/python -m loadtests.auction_hub \
        --watchers 5000 --bidders 500 --rate 1000 --seconds 15
    ... --ack-before-commit        # the cost of durability (record only)
    ... --watchers 0 --bidders 400 --rate 0   # the highest attempt rate (closed loop)
    ... --watchers 200 --drain 4800           # 5,000 watchers, 4,800 of them load-only in C
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import multiprocessing as mp
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from auctions.wire import events_of
from core.auth import generate_key
from core.config import Settings
from loadtests.fanout import procstat
from loadtests.fanout.client import Commander, Endpoint, Fleet
from loadtests.fanout.drain import Drain
from loadtests.fanout.stats import ConnTracker, Msg, Recorder, Summary, decode_frame

BID_EVENT = msgspec.json.Decoder(dict[str, Any])
BUYER_FUNDS = 100_000_000  # USD cents per bidder: never short of funds in a run
WARM_UP_S = 2.0  # the first seconds of bidding, left out of the steady figures
# The hub writes each publication as `{"channel":"…","offset":N,"data":…}`, several per frame
# separated by raw newlines (JSON never has one inside a document): one line per publication.
PUBLICATION_HEAD = b'{"channel":"'
OFFSET_KEY = b'","offset":'


def _offset_at(payload: bytes, pos: int) -> int:
    """The offset of the publication whose line starts at `pos`."""
    k = payload.index(OFFSET_KEY, pos, pos + 200) + len(OFFSET_KEY)
    return int(payload[k:payload.index(b",", k)])


def _line_starts(payload: bytes) -> list[int]:
    """Where each publication (line) of a frame starts."""
    out = [0]
    pos = payload.find(b"\n")
    while pos >= 0:
        out.append(pos + 1)
        pos = payload.find(b"\n", pos + 1)
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def dist(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": pct(values, 0.50), "p95": pct(values, 0.95),
            "p99": pct(values, 0.99), "max": round(max(values, default=0.0), 2),
            "mean": round(statistics.fmean(values), 2) if values else 0.0}


# --- watchers (own process) --------------------------------------------------------------------


class BidRecorder(Recorder):
    """The fan-out accounting for every connection, plus (offset, arrival ns) of every
    publication on the sampled connections and each offset's bid seq."""

    def __init__(self) -> None:
        super().__init__()
        self.sampled: set[int] = set()
        self.offsets = array.array("q")
        self.arrivals = array.array("q")
        self.seqs_of: dict[int, list[int]] = {}  # offset -> the bid seqs it carried

    def on_frame(self, tracker: ConnTracker, payload: bytes, now_ns: int) -> list[Msg]:
        if id(tracker) not in self.sampled and payload.startswith(PUBLICATION_HEAD):
            # Not timed: only the offsets matter (missing, gaps, reorders). At 5,000 watchers
            # a Python pass over every publication cost the generator about a third of a core
            # (and, earlier, a JSON decode made it fall behind by hundreds of MB): read the
            # first and last offsets and count the lines (one publication per line; `find` is
            # memchr, `count` would scan byte by byte). A frame whose count does not match its
            # offset span goes the slow way, offset by offset; the only fault this can miss is
            # a lost offset and a duplicate inside one frame (the sampled connections check
            # every offset).
            starts = _line_starts(payload)
            first = _offset_at(payload, 0)
            last = _offset_at(payload, starts[-1]) if len(starts) > 1 else first
            if last - first + 1 == len(starts) and tracker.last < first:
                n = tracker.observe_run(first, last)
            else:
                n = sum(tracker.observe(_offset_at(payload, pos)) for pos in starts)
            self.received(n, now_ns)
            return []
        others = super().on_frame(tracker, payload, now_ns)
        if id(tracker) in self.sampled:
            for m in decode_frame(payload):
                if m.offset is None:
                    continue
                if m.offset not in self.seqs_of:
                    data = BID_EVENT.decode(bytes(m.data))
                    self.seqs_of[m.offset] = [e["seq"] for e in events_of(data)
                                              if e.get("type") == "bid"]
                self.offsets.append(m.offset)
                self.arrivals.append(now_ns)
        return others

    @staticmethod
    def _timestamp(data: msgspec.Raw) -> int:
        return 0  # latency is computed against PostgreSQL's placed_at afterwards


def watchers_main(urls: list[str], channel: str, n: int, sample: int, ready: Any,
                  stop: Any, out: Any) -> None:
    import uvloop

    async def run() -> dict[str, Any]:
        recorder = BidRecorder()
        fleet = Fleet([Endpoint(u + "/v1/ws") for u in urls], channel, recorder)
        took = await fleet.open(n, timeout_s=120)
        for i, sub in enumerate(fleet.subscribers):
            if i % sample == 0:
                recorder.sampled.add(id(sub.tracker))
        ready.set()
        await asyncio.to_thread(stop.wait)
        published = max(recorder.seqs_of, default=0) - min(recorder.seqs_of, default=1) + 1
        summary = Summary.of(fleet.trackers, published)
        fleet.close()
        return {"open_s": round(took, 1), "delivered": recorder.delivered,
                "missing": summary.missing, "gaps": summary.gaps,
                "reorders": summary.reorders, "closed": summary.closed,
                "errors": fleet.errors()[:5], "sampled": len(recorder.sampled),
                "offsets": recorder.offsets.tobytes(), "arrivals": recorder.arrivals.tobytes(),
                "seqs_of": recorder.seqs_of}

    out.put(uvloop.run(run()))


# --- bidders (own process) ---------------------------------------------------------------------


async def _bid_loop(conn: Commander, rng: random.Random, auction: str, interval: float,
                    t0: float, end: float, price: list[int], lat: dict[str, list[float]],
                    steady: list[float]) -> None:
    """One bidder: a bid every `interval` s (open loop; 0 = closed loop) until `end`.
    Bid mix: 70% one-tap `next` up to 10% above the last price seen, 30% maxima around it."""
    due = t0 + rng.uniform(0, interval)
    while True:
        if interval:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            due = max(due + interval, time.perf_counter() - interval)
        if time.perf_counter() >= end:
            return
        p = price[0]
        if rng.random() < 0.7:
            bid = {"kind": "next", "amount": p * 11 // 10 + 5_000}
        else:
            bid = {"kind": "max", "amount": max(1_000, p + rng.randint(-2, 30) * 100)}
        sent = time.perf_counter()
        reply: dict[str, Any] = await conn.request(
            {"op": "bid", "auction_id": auction, "bid_id": str(uuid.uuid4()), **bid})
        took = (time.perf_counter() - sent) * 1000
        if sent - t0 >= WARM_UP_S:
            steady.append(took)
        if "result" in reply:
            lat.setdefault("accepted", []).append(took)
            price[0] = max(price[0], reply["result"]["price"])
        else:
            lat.setdefault(reply["error"]["code"], []).append(took)


def bidders_main(urls: list[str], auction: str, users: list[tuple[str, str]], rate: float,
                 seconds: float, first: int, ready: Any, start: Any, out: Any) -> None:
    import uvloop

    async def run() -> dict[str, Any]:
        conns = [await Commander.connect(Endpoint(
            urls[(first + i) % len(urls)] + "/v1/ws",
            headers={"Authorization": f"Bearer {token}"})) for i, (_, token) in enumerate(users)]
        ready.set()
        await asyncio.to_thread(start.wait)
        t0 = time.perf_counter()
        lat: dict[str, list[float]] = {}
        steady: list[float] = []
        interval = len(users) / rate if rate else 0.0
        price = [1_000]  # the highest price any bidder of this process was told
        await asyncio.gather(*(
            _bid_loop(conn, random.Random(first + i), auction, interval, t0, t0 + seconds,
                      price, lat, steady) for i, conn in enumerate(conns)))
        elapsed = time.perf_counter() - t0
        for conn in conns:
            conn.close()
        return {"lat": lat, "steady": steady, "elapsed": elapsed}

    out.put(uvloop.run(run()))


# --- the run -----------------------------------------------------------------------------------


async def prepare(settings: Settings, base: str, bidders: int) -> tuple[str, list[tuple[str, str]]]:
    from core import db
    from testkit.people import funded_buyers

    pool = await db.create_pool(settings.database_url, schema=settings.database_schema,
                                min_size=1, max_size=2)
    try:
        users = await funded_buyers(pool, settings, bidders, funds=BUYER_FUNDS)
    finally:
        await pool.close()
    async with httpx.AsyncClient(timeout=30) as http:
        email = f"seller-{uuid.uuid4().hex[:8]}@bench.test"
        r = await http.post(base + "/v1/auth/register", json={
            "email": email, "password": "correct horse battery staple",
            "display_name": "Bench seller", "role": "seller"})
        r.raise_for_status()
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await http.post(base + "/v1/products", headers=headers, json={
            "title": "Hot item", "variants": [{"sku": "HOT-1", "price": 9_000, "stock": 1}]})
        r.raise_for_status()
        r = await http.post(base + "/v1/auctions", headers=headers, json={
            "variant_id": r.json()["variants"][0]["id"], "start_price": 1_000,
            "duration_s": 3600, "soft_close_s": 10})
        r.raise_for_status()
        return str(r.json()["id"]), users


async def record(settings: Settings, auction: str) -> dict[str, Any]:
    from core import db

    pool = await db.create_pool(settings.database_url, schema=settings.database_schema,
                                min_size=1, max_size=2)
    try:
        rows = await pool.fetch(
            "SELECT seq, (extract(epoch FROM placed_at) * 1e9)::bigint AS ns FROM auction_bids "
            "WHERE auction_id = $1 ORDER BY seq", uuid.UUID(auction))
        attempts = await pool.fetchval(
            "SELECT count(*) FROM auction_bid_attempts WHERE auction_id = $1", uuid.UUID(auction))
    finally:
        await pool.close()
    seqs = [r["seq"] for r in rows]
    return {"accepted": len(rows), "attempts_written": attempts,
            "gapless": seqs == list(range(1, len(seqs) + 1)),
            "placed_ns": {r["seq"]: r["ns"] for r in rows}}


def delivery(w: dict[str, Any], placed: dict[int, int], skip_ns: int) -> dict[str, float]:
    offsets = array.array("q")
    offsets.frombytes(w["offsets"])
    arrivals = array.array("q")
    arrivals.frombytes(w["arrivals"])
    lat = []
    for off, at in zip(offsets, arrivals, strict=True):
        for seq in w["seqs_of"].get(off, ()):
            if seq in placed and placed[seq] >= skip_ns:
                lat.append((at - placed[seq]) / 1e6)
    return dist(lat)


SCRAPED = ("souk_ws_writes", "souk_ws_bytes_out", "souk_ws_publications_in",
           "souk_ws_publications_out", "souk_ws_slow_disconnects",
           "souk_ws_fanout_duration_seconds", "souk_gc_pause_seconds",
           "souk_auction_batches", "souk_auction_batch_failures")


def scrape(url: str) -> dict[str, Any]:
    return summarise_metrics(httpx.get(url + "/metrics", timeout=10).text)


def summarise_metrics(text: str) -> dict[str, Any]:
    """A server's fan-out, GC and sequencer counters (summed over labels) from its /metrics
    text, with the sequencer's mean time per batch stage and its own ack-latency percentiles
    (upper bounds of the histogram's buckets)."""
    totals: dict[str, float] = {}
    stage_sum: dict[str, float] = {}
    stage_n: dict[str, float] = {}
    ack_buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if family.name in SCRAPED and not sample.name.endswith(("_created", "_bucket")):
                key = sample.name.removeprefix("souk_")
                totals[key] = totals.get(key, 0.0) + sample.value
            elif family.name == "souk_auction_batch_stage_seconds":
                stage = sample.labels.get("stage", "")
                if sample.name.endswith("_sum"):
                    stage_sum[stage] = sample.value
                elif sample.name.endswith("_count"):
                    stage_n[stage] = sample.value
            elif sample.name == "souk_auction_bid_ack_seconds_bucket":
                ack_buckets.append((float(sample.labels["le"]), sample.value))
    out: dict[str, Any] = {k: round(v, 3) for k, v in totals.items()}
    out["stage_ms_mean"] = {k: round(1000 * stage_sum[k] / n, 2)
                            for k, n in stage_n.items() if n}
    if ack_buckets and ack_buckets[-1][1]:
        total = ack_buckets[-1][1]
        out["server_ack_ms_le"] = {
            q: next(1000 * le for le, n in ack_buckets if n >= total * float(q))
            for q in ("0.5", "0.95", "0.99")}
    return out


def summarise(args: argparse.Namespace, results: list[dict[str, Any]],
              watch: dict[str, Any] | None, rec: dict[str, Any], t_start: int) -> dict[str, Any]:
    lat: dict[str, list[float]] = {}
    elapsed = max(r["elapsed"] for r in results)
    for r in results:
        for k, v in r["lat"].items():
            lat.setdefault(k, []).extend(v)
    every = [x for v in lat.values() for x in v]
    steady = [x for r in results for x in r["steady"]]
    report: dict[str, Any] = {
        "servers": args.servers, "watchers": args.watchers, "bidders": args.bidders,
        "rate": args.rate, "seconds": args.seconds, "server_nice": args.server_nice,
        "ack_before_commit": args.ack_before_commit,
        "attempts_per_s": round(len(every) / elapsed, 1),
        "accepted_per_s": round(len(lat.get("accepted", [])) / elapsed, 1),
        "outcomes": {k: len(v) for k, v in lat.items()},
        "ack_ms_all": dist(every), "ack_ms_accepted": dist(lat.get("accepted", [])),
        # bids sent after the first WARM_UP_S (an auction's first burst pays its cold caches,
        # pool growth and script loading), as for delivery below
        "ack_ms_steady": dist(steady),
        "gapless": rec["gapless"], "accepted_in_pg": rec["accepted"],
        "attempts_in_pg": rec["attempts_written"],
        "load_avg": os.getloadavg(),
    }
    if watch is not None:
        # deliveries of bids placed in the first WARM_UP_S are left out
        report["delivery_ms"] = delivery(watch, rec["placed_ns"],
                                         t_start + int(WARM_UP_S * 10**9))
        report["watchers_result"] = {k: v for k, v in watch.items()
                                     if k not in ("offsets", "arrivals", "seqs_of")}
    return report


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--servers", type=int, default=2)
    p.add_argument("--watchers", type=int, default=5000)
    p.add_argument("--bidders", type=int, default=500)
    p.add_argument("--bidder-procs", type=int, default=1)
    p.add_argument("--rate", type=float, default=1000, help="attempts/s in all; 0 = closed loop")
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--sample", type=int, default=49, help="1 in N watchers timed")
    p.add_argument("--drain", type=int, default=0,
                   help="extra load-only watchers in C (loadtests/fanout/drain.c): they read "
                        "and discard, at a fraction of the Python watchers' CPU; delivery, gaps "
                        "and order are measured on the --watchers ones")
    p.add_argument("--ack-before-commit", action="store_true")
    p.add_argument("--env", action="append", default=[], help="extra server env KEY=VALUE")
    p.add_argument("--server-nice", type=int, default=0,
                   help="niceness of the server processes (e.g. -10: the load generators share "
                        "the two cores, and this keeps them from delaying the servers)")
    args = p.parse_args()
    if not 0 < args.seconds <= 30:
        raise SystemExit("--seconds must be in (0, 30]")
    return args


def main() -> None:
    args = parse_args()

    from testkit.servers import ServerProcess
    from testkit.services import drop_isolation, make_settings

    workdir = Path(tempfile.mkdtemp(prefix="auction-hub-"))
    generate_key(workdir, "bench1")
    settings = make_settings(workdir, database_pool_max=20)
    # the servers run with the product's defaults, not the test suite's (which leaves GC alone)
    gc_default = Settings.__dataclass_fields__["gc_gen0_threshold"].default
    env = {"GC_GEN0_THRESHOLD": str(gc_default),
           "AUCTION_BID_RATE": "100000", "WS_MAX_CONNECTIONS": "19100",
           "WS_COMMAND_RATE": "100000", "WS_COMMAND_BURST": "100000",
           "AUCTION_ACK_BEFORE_COMMIT": "true" if args.ack_before_commit else "false"}
    env.update(kv.split("=", 1) for kv in args.env)
    procs: list[ServerProcess] = []
    ctx = mp.get_context("spawn")
    try:
        for _ in range(args.servers):
            procs.append(ServerProcess(settings, extra_env=env).start(log_dir=workdir))
            if args.server_nice:
                assert procs[-1].proc is not None
                os.setpriority(os.PRIO_PROCESS, procs[-1].proc.pid, args.server_nice)
        urls = [s.ws_url for s in procs]
        auction, users = asyncio.run(prepare(settings, procs[0].url, args.bidders))
        channel = f"auction:{auction}"
        out: Any = ctx.Queue()
        stop = ctx.Event()
        children = []
        drain = None
        if args.drain:
            drain = Drain(urls, args.drain, channel, max_s=args.seconds + 300)
            drain.wait_ready()
        if args.watchers:
            w_ready = ctx.Event()
            children.append(ctx.Process(target=watchers_main, args=(
                urls, channel, args.watchers, args.sample, w_ready, stop, out)))
            children[-1].start()
            if not w_ready.wait(150):
                raise SystemExit("watchers did not connect")
        start = ctx.Event()
        b_ready = []
        per = -(-len(users) // args.bidder_procs)
        for k in range(args.bidder_procs):
            ready = ctx.Event()
            b_ready.append(ready)
            share = users[k * per:(k + 1) * per]
            children.append(ctx.Process(target=bidders_main, args=(
                urls, auction, share, args.rate * len(share) / len(users), args.seconds,
                k * per, ready, start, out)))
            children[-1].start()
        for ready in b_ready:
            if not ready.wait(120):
                raise SystemExit("bidders did not connect")
        t_start = time.time_ns()
        pids = [s.proc.pid for s in procs if s.proc is not None]
        cpu_before = [procstat.sample(pid).cpu_s for pid in pids]
        start.set()
        results = [out.get(timeout=args.seconds + 120) for _ in range(args.bidder_procs)]
        cpu_used = [procstat.sample(pid).cpu_s - c
                    for pid, c in zip(pids, cpu_before, strict=True)]
        time.sleep(2.0)  # deliveries drain
        stop.set()
        watch = out.get(timeout=120) if args.watchers else None
        drained = drain.stop() if drain is not None else None
        for c in children:
            c.join(30)
        rec = asyncio.run(record(settings, auction))
        report = summarise(args, results, watch, rec, t_start)
        if drained is not None:
            report["drain"] = drained
        report["servers_metrics"] = [scrape(s.url) for s in procs]
        attempts = sum(report["outcomes"].values())
        report["server_cpu_s"] = [round(c, 2) for c in cpu_used]
        # the servers' CPU (user + system) while bidding, per attempt: steadier than latency
        # on a box whose load generators share the cores
        report["server_cpu_ms_per_attempt"] = round(1000 * sum(cpu_used) / max(1, attempts), 3)
        print(json.dumps(report, indent=1))
    finally:
        for s in procs:
            s.stop()
        asyncio.run(drop_isolation(settings))


if __name__ == "__main__":
    main()
