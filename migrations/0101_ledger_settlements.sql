-- Seller settlements waiting for their holding period (api/ledger/settlement.py). The orders
-- domain schedules one when an order is delivered; a job settles due rows, safe to run in
-- several processes at once (FOR UPDATE SKIP LOCKED), each row at most once.
CREATE TABLE ledger_settlements (
    order_id    uuid PRIMARY KEY,
    seller_id   uuid NOT NULL,
    due_at      timestamptz NOT NULL,
    state       text NOT NULL DEFAULT 'scheduled'
                    CHECK (state IN ('scheduled', 'settled', 'skipped')),
    transfer_id uuid REFERENCES ledger_transfers (id),
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_settlements_due ON ledger_settlements (due_at) WHERE state = 'scheduled';
