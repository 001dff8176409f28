-- Live auctions: the auction row (rules + current state), accepted bids (gapless per-auction
-- sequence), every bid attempt (audit), and admin actions.
-- variant_id and show_id belong to commerce/streaming; they are stored without a foreign key
-- so this package stays independent (validated through an injected port at creation).
CREATE TABLE auctions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seller_id         uuid NOT NULL REFERENCES users (id),
    variant_id        uuid NOT NULL,
    show_id           uuid,
    currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    start_price       bigint NOT NULL CHECK (start_price > 0),
    reserve_price     bigint CHECK (reserve_price > 0),
    buy_now_price     bigint CHECK (buy_now_price > 0),
    increments        jsonb NOT NULL,
    duration_ms       integer NOT NULL CHECK (duration_ms > 0),
    soft_close_ms     integer NOT NULL DEFAULT 0 CHECK (soft_close_ms >= 0),
    starts_at         timestamptz NOT NULL,
    ends_at           timestamptz NOT NULL,
    state             text NOT NULL CHECK (state IN ('scheduled', 'open', 'closed', 'cancelled')),
    outcome           text CHECK (outcome IN ('sold', 'no_sale')),
    seq               bigint NOT NULL DEFAULT 0 CHECK (seq >= 0),
    price             bigint NOT NULL,
    leader_id         uuid,
    leader_max        bigint NOT NULL DEFAULT 0,
    second_max        bigint NOT NULL DEFAULT 0,  -- hidden, like leader_max
    bid_count         integer NOT NULL DEFAULT 0,
    buy_now_available boolean NOT NULL,
    closed_at         timestamptz,
    cancel_reason     text,
    -- Winner settlement: the order and the wallet capture (see auctions/scheduler.py).
    order_id          uuid,
    payment_state     text CHECK (payment_state IN ('captured', 'awaiting_payment', 'failed')),
    payment_due_at    timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (leader_id IS NULL OR price <= leader_max),
    CHECK ((state IN ('closed', 'cancelled')) = (closed_at IS NOT NULL)),
    CHECK ((state = 'closed') = (outcome IS NOT NULL))
);
CREATE INDEX auctions_due ON auctions (ends_at) WHERE state IN ('scheduled', 'open');
CREATE INDEX auctions_payment_due ON auctions (payment_due_at)
    WHERE payment_state = 'awaiting_payment';
CREATE INDEX auctions_seller ON auctions (seller_id, created_at DESC);
CREATE INDEX auctions_show ON auctions (show_id) WHERE show_id IS NOT NULL;

-- Accepted bids. seq is assigned by the single writer holding the auction row lock:
-- 1, 2, 3... with no gaps (checked by tests and by the service before each batch).
CREATE TABLE auction_bids (
    auction_id    uuid NOT NULL REFERENCES auctions (id) ON DELETE CASCADE,
    seq           bigint NOT NULL CHECK (seq > 0),
    bidder_id     uuid NOT NULL,
    bid_id        uuid NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('max', 'exact', 'buy_now')),
    amount        bigint NOT NULL CHECK (amount > 0),
    price_after   bigint NOT NULL,
    leader_after  uuid NOT NULL,
    ends_at_after timestamptz NOT NULL,
    placed_at     timestamptz NOT NULL,
    voided_at     timestamptz,
    void_reason   text,
    voided_by     uuid,
    PRIMARY KEY (auction_id, seq),
    UNIQUE (auction_id, bidder_id, bid_id)
);

-- Every attempt and its outcome ('accepted' or the error code), for admins.
CREATE TABLE auction_bid_attempts (
    id           bigserial PRIMARY KEY,
    auction_id   uuid NOT NULL REFERENCES auctions (id) ON DELETE CASCADE,
    bidder_id    uuid NOT NULL,
    bid_id       uuid,
    kind         text NOT NULL,
    amount       bigint,
    outcome      text NOT NULL,
    seq          bigint,
    attempted_at timestamptz NOT NULL
);
CREATE INDEX auction_bid_attempts_auction ON auction_bid_attempts (auction_id, id);

-- Admin actions (cancel, void) with actor and reason.
CREATE TABLE auction_admin_actions (
    id         bigserial PRIMARY KEY,
    auction_id uuid NOT NULL REFERENCES auctions (id) ON DELETE CASCADE,
    actor_id   uuid NOT NULL,
    action     text NOT NULL CHECK (action IN ('cancel', 'void_bid')),
    seq        bigint,
    reason     text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auction_admin_actions_auction ON auction_admin_actions (auction_id, id);
