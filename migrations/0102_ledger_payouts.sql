-- Payouts in flight: requested (money in payout clearing), then paid (the bank confirmed) or
-- failed (a payout_reversal transfer returned it to the seller's payable). Resolves once.
-- (A separate file so databases that already applied 0100 pick it up.)
ALTER TABLE ledger_transfers DROP CONSTRAINT ledger_transfers_kind_check;
ALTER TABLE ledger_transfers ADD CONSTRAINT ledger_transfers_kind_check
    CHECK (kind IN ('topup', 'hold', 'release', 'capture', 'refund', 'settle', 'payout',
                    'payout_reversal', 'adjustment'));

CREATE TABLE ledger_payouts (
    id                uuid PRIMARY KEY REFERENCES ledger_transfers (id),  -- the payout transfer
    seller_id         uuid NOT NULL,
    amount            bigint NOT NULL CHECK (amount > 0),
    currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    state             text NOT NULL DEFAULT 'requested'
                          CHECK (state IN ('requested', 'paid', 'failed')),
    reversal_transfer uuid REFERENCES ledger_transfers (id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_payouts_seller ON ledger_payouts (seller_id, created_at DESC);
