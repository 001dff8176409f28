-- Wallet ledger: double-entry, append-only (see api/ledger/rules.py for the sign convention).
--
-- What the database itself guarantees, whatever the application does:
--  * transfers and entries can never be updated, deleted or truncated (triggers raise);
--  * each transfer's entries sum to zero per currency (deferred constraint trigger, at commit);
--  * buyer wallets, held funds and order escrow never go negative (CHECK);
--  * an entry's currency is its account's currency (entries carry no currency of their own).

CREATE TABLE ledger_accounts (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('buyer_wallet', 'buyer_held', 'seller_payable',
                    'platform_fees', 'order_escrow', 'topup_clearing', 'payout_clearing',
                    'adjustments')),
    owner_id   uuid NOT NULL,  -- user, order, or shard number for system accounts
    currency   text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance    bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, owner_id, currency),
    CONSTRAINT ledger_accounts_non_negative
        CHECK (balance >= 0 OR kind NOT IN ('buyer_wallet', 'buyer_held', 'order_escrow'))
);

CREATE TABLE ledger_transfers (
    id           uuid PRIMARY KEY,  -- chosen by the client: the idempotency key
    kind         text NOT NULL CHECK (kind IN ('topup', 'hold', 'release', 'capture', 'refund',
                      'settle', 'payout', 'adjustment')),
    request_hash bytea NOT NULL,
    order_id     uuid,
    reference_id uuid REFERENCES ledger_transfers (id),  -- the transfer this one corrects
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_transfers_order ON ledger_transfers (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX ledger_transfers_reference ON ledger_transfers (reference_id)
    WHERE reference_id IS NOT NULL;

CREATE TABLE ledger_entries (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id   uuid NOT NULL REFERENCES ledger_transfers (id),
    account_id    bigint NOT NULL REFERENCES ledger_accounts (id),
    amount        bigint NOT NULL CHECK (amount <> 0),
    balance_after bigint NOT NULL,  -- the account's balance right after this entry
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (transfer_id, account_id)
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, id);

CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER ledger_transfers_append_only BEFORE UPDATE OR DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_transfers_no_truncate BEFORE TRUNCATE ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
        WHERE e.transfer_id = NEW.transfer_id
        GROUP BY a.currency HAVING sum(e.amount) <> 0
    ) THEN
        RAISE EXCEPTION 'ledger transfer % does not sum to zero', NEW.transfer_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();

-- Funds of one order, as the ledger sees them: the hold, then capture, refunds and settlement.
-- Mutable bookkeeping beside the append-only ledger (every value here is derivable from the
-- order's transfers); its row lock serialises operations on one order.
CREATE TABLE ledger_order_funds (
    order_id          uuid PRIMARY KEY,
    buyer_id          uuid NOT NULL,
    currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    state             text NOT NULL CHECK (state IN ('held', 'released', 'captured', 'settled')),
    held              bigint NOT NULL CHECK (held > 0),
    hold_transfer     uuid NOT NULL REFERENCES ledger_transfers (id),
    captured          bigint NOT NULL DEFAULT 0 CHECK (captured >= 0),
    capture_transfer  uuid REFERENCES ledger_transfers (id),
    refunded          bigint NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= captured),
    seller_id         uuid,
    settled           bigint NOT NULL DEFAULT 0 CHECK (settled >= 0),
    fee               bigint NOT NULL DEFAULT 0 CHECK (fee >= 0 AND fee <= settled),
    settle_transfer   uuid REFERENCES ledger_transfers (id),
    refunded_after_settle bigint NOT NULL DEFAULT 0
        CHECK (refunded_after_settle >= 0 AND refunded_after_settle <= settled),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_order_funds_buyer ON ledger_order_funds (buyer_id);

-- A seller's payout bank details, AES-256-GCM encrypted (api/ledger/crypto.py). `kid` names the
-- key so keys can rotate; the associated data binds a ciphertext to its seller.
CREATE TABLE seller_payout_details (
    seller_id  uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    kid        text NOT NULL,
    nonce      bytea NOT NULL CHECK (length(nonce) = 12),
    ciphertext bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
