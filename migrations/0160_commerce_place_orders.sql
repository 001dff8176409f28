-- Checkout's writes in one round trip (api/checkout/service.py `_place`): the orders, their
-- lines, their `created` history rows and `order.created` outbox events, the wallet hold of each
-- order (ledger transfer, entries, balances, order funds row, `wallet.changed` event) and the
-- emptied cart. It runs inside the caller's transaction (with the Idempotency-Key row); a
-- wallet short of the total RAISEs (SQLSTATE P0001, MESSAGE 'insufficient_funds') and the
-- caller rolls everything back.
--
-- The caller computes what is pure (the split into orders, order ids, hold transfer ids and
-- their request fingerprints) and passes arrays: orders in ascending id (the ledger's stable
-- order) and their lines. Lock order as before: new order rows, then the buyer's ledger
-- accounts (ascending id); the caller reserves the stock (variant rows in ascending id) after
-- this returns — the hot rows of a flash drop last, locked only until the commit.
CREATE FUNCTION commerce_place_orders(
    p_buyer uuid, p_ttl_s float8,
    o_id uuid[], o_seller uuid[], o_currency text[], o_total bigint[],
    o_hold_id uuid[], o_hold_hash bytea[],
    l_order uuid[], l_variant uuid[], l_product uuid[], l_title text[], l_sku text[],
    l_price bigint[], l_qty integer[],
    p_clear_cart boolean
) RETURNS timestamptz
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_until timestamptz := now() + make_interval(secs => p_ttl_s);
    v_currencies text[];
    v_locked integer;
    v_wallet bigint;
    v_held bigint;
    v_wallet_after bigint;
    v_held_after bigint;
    i integer;
BEGIN
    INSERT INTO orders (id, buyer_id, seller_id, state, currency, total, reserved_until)
    SELECT o.id, p_buyer, o.seller, 'pending_payment', o.currency, o.total, v_until
      FROM unnest(o_id, o_seller, o_currency, o_total) AS o(id, seller, currency, total);
    INSERT INTO order_lines (order_id, variant_id, product_id, title, sku, unit_price, quantity)
    SELECT * FROM unnest(l_order, l_variant, l_product, l_title, l_sku, l_price, l_qty);
    WITH ev AS (
        INSERT INTO order_events (order_id, kind, from_state, to_state, actor_id, actor_role)
        SELECT o.id, 'created', NULL, 'pending_payment', p_buyer, 'buyer'
          FROM unnest(o_id) WITH ORDINALITY AS o(id, n) ORDER BY o.n
        RETURNING id, order_id, at)
    INSERT INTO outbox (topic, channels, payload)
    SELECT 'order.created',
           ARRAY['order:' || o.id, 'user:' || p_buyer, 'user:' || o.seller],
           jsonb_build_object(
               'type', 'order.created', 'order_id', o.id, 'event_id', ev.id, 'kind', 'created',
               'from', NULL, 'to', 'pending_payment', 'by', 'buyer', 'reason', NULL,
               'at', regexp_replace(
                   to_char(ev.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                   '\.000000Z$', 'Z'),
               'total', o.total, 'currency', o.currency)
      FROM ev JOIN unnest(o_id, o_seller, o_currency, o_total) WITH ORDINALITY
                   AS o(id, seller, currency, total, n) ON o.id = ev.order_id
     ORDER BY ev.id;

    IF cardinality(o_hold_id) > 0 THEN
        -- The buyer's wallet and held accounts of every currency, locked in ascending id;
        -- created first when missing (in key order, as api.ledger.store does).
        v_currencies := ARRAY(SELECT DISTINCT c FROM unnest(o_currency) AS c ORDER BY c);
        PERFORM 1 FROM ledger_accounts
          WHERE kind IN ('buyer_wallet', 'buyer_held') AND owner_id = p_buyer
            AND currency = ANY (v_currencies)
          ORDER BY id FOR UPDATE;
        GET DIAGNOSTICS v_locked = ROW_COUNT;
        IF v_locked < 2 * cardinality(v_currencies) THEN
            INSERT INTO ledger_accounts (kind, owner_id, currency)
            SELECT k.kind, p_buyer, c.c
              FROM (VALUES ('buyer_held'), ('buyer_wallet')) AS k(kind), unnest(v_currencies) AS c
             ORDER BY k.kind, c.c
            ON CONFLICT DO NOTHING;
            PERFORM 1 FROM ledger_accounts
              WHERE kind IN ('buyer_wallet', 'buyer_held') AND owner_id = p_buyer
                AND currency = ANY (v_currencies)
              ORDER BY id FOR UPDATE;
        END IF;
        FOR i IN 1 .. cardinality(o_hold_id) LOOP
            UPDATE ledger_accounts SET balance = balance - o_total[i]
             WHERE kind = 'buyer_wallet' AND owner_id = p_buyer AND currency = o_currency[i]
               AND balance >= o_total[i]
            RETURNING id, balance INTO v_wallet, v_wallet_after;
            IF NOT FOUND THEN
                RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'insufficient_funds';
            END IF;
            UPDATE ledger_accounts SET balance = balance + o_total[i]
             WHERE kind = 'buyer_held' AND owner_id = p_buyer AND currency = o_currency[i]
            RETURNING id, balance INTO v_held, v_held_after;
            INSERT INTO ledger_transfers (id, kind, request_hash, order_id)
            VALUES (o_hold_id[i], 'hold', o_hold_hash[i], o_id[i]);
            INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after)
            VALUES (o_hold_id[i], v_wallet, -o_total[i], v_wallet_after),
                   (o_hold_id[i], v_held, o_total[i], v_held_after);
            INSERT INTO ledger_order_funds (order_id, buyer_id, currency, state, held,
                                            hold_transfer)
            VALUES (o_id[i], p_buyer, o_currency[i], 'held', o_total[i], o_hold_id[i]);
            INSERT INTO outbox (topic, channels, payload)
            VALUES ('wallet.changed', ARRAY['user:' || p_buyer], jsonb_build_object(
                'user_id', p_buyer, 'transfer_id', o_hold_id[i], 'kind', 'hold',
                'currency', o_currency[i], 'available', v_wallet_after, 'held', v_held_after));
        END LOOP;
    END IF;

    IF p_clear_cart THEN
        DELETE FROM cart_items WHERE buyer_id = p_buyer;
    END IF;
    PERFORM pg_notify('souk_outbox', '');  -- core.outbox.NOTIFY_CHANNEL
    RETURN v_until;
END
$$;
