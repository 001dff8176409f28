"""The auctions' Prometheus collectors, on the process's injected registry. Labels are
outcomes and stages, never ids."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25,
                    0.5, 1.0, 2.5)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

# The steps of one batch, in order (see sequencer.py): its bids' rate-limit checks settle (and
# the writer takes a pool connection if it has none), the wallets are read (and display names
# not seen yet), the auction's lock is waited for (another writer holds it) and the state read in
# the same round trip, the batch is written under it, then the unlock and the publication go out
# together (the next batch waits for the unlock; the publication runs on beside it).
STAGES = ("checks", "funds", "lock_read", "write", "unlock", "publish")


class AuctionMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.attempts = Counter(
            "souk_auction_bid_attempts_total",
            "Bid attempts recorded by this process's sequencer, by outcome (accepted or the "
            "refusal's code).", ("outcome",), registry=r,
        )
        self.batches = Counter(
            "souk_auction_batches_total", "Bid batches committed by this process.", registry=r
        )
        self.batch_failures = Counter(
            "souk_auction_batch_failures_total",
            "Bid batches that could not be recorded (their bids were answered with an error).",
            registry=r,
        )
        self.batch_size = Histogram(
            "souk_auction_batch_size", "Bid attempts per committed batch.",
            buckets=_SIZE_BUCKETS, registry=r,
        )
        self.stage = Histogram(
            "souk_auction_batch_stage_seconds",
            "Time a batch spent in each step (checks, funds, lock_read, write, unlock, publish).",
            ("stage",), buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.ack = Histogram(
            "souk_auction_bid_ack_seconds",
            "From a bid's arrival at the sequencer to its answer (accepted or refused).",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.unaudited = Counter(
            "souk_auction_unaudited_total",
            "Attempts refused as overloaded whose audit row was dropped as well.", registry=r,
        )
        self.funds_checks = Counter(
            "souk_auction_funds_checks_total",
            "Bid batches' wallet checks, by source: ledger (queried) or cache (every bid covered "
            "by a balance read less than AUCTION_FUNDS_CACHE_MS ago).", ("source",), registry=r,
        )
        self.connections = Gauge(
            "souk_auction_writer_connections",
            "Pool connections this process's bid writers hold (at most "
            "AUCTION_WRITER_CONNECTIONS).",
            registry=r,
        )
        self.connection_waits = Counter(
            "souk_auction_writer_connection_waits_total",
            "Times a bid writer waited for a connection because the writers' budget was taken "
            "(hot auctions then take turns of 20 ms).", registry=r,
        )
        self.announcements_repaired = Counter(
            "souk_auction_announcements_repaired_total",
            "Commits whose announcement the closing scheduler's check found missing in Redis "
            "and published (its writer died, or Redis failed, in between).", registry=r,
        )
        self.publications_pruned = Counter(
            "souk_auction_publications_pruned_total",
            "Recorded announcements (auction_publications) deleted by this process's closing "
            "scheduler after AUCTION_PUBLICATIONS_KEEP_S.", registry=r,
        )
        self.attempts_pruned = Counter(
            "souk_auction_attempts_pruned_total",
            "Bid attempts' audit rows of long-ended auctions deleted by this process's closing "
            "scheduler (AUCTION_ATTEMPTS_KEEP_DAYS; 0 keeps them for good).", registry=r,
        )
        self.bids_routed = Counter(
            "souk_auction_bids_routed_total",
            "Bids sent to the auction's owner process, by outcome (forwarded, owner_gone, "
            "timeout).", ("outcome",), registry=r,
        )
