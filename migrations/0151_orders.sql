-- Carts, orders (one per seller and currency per checkout), their lines and their history.
CREATE TABLE cart_items (
    buyer_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    variant_id uuid NOT NULL REFERENCES variants (id) ON DELETE CASCADE,
    quantity   integer NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (buyer_id, variant_id)
);

CREATE TABLE orders (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    buyer_id       uuid NOT NULL REFERENCES users (id),
    seller_id      uuid NOT NULL REFERENCES users (id),
    rider_id       uuid REFERENCES users (id),
    state          text NOT NULL CHECK (state IN ('pending_payment', 'paid', 'packed',
                       'out_for_delivery', 'delivered', 'cancelled', 'refunded')),
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    total          bigint NOT NULL CHECK (total > 0),
    reserved_until timestamptz,
    paid_at        timestamptz,
    delivered_at   timestamptz,
    settled_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_buyer ON orders (buyer_id, created_at DESC, id DESC);
CREATE INDEX orders_seller ON orders (seller_id, created_at DESC, id DESC);
CREATE INDEX orders_rider ON orders (rider_id, created_at DESC, id DESC) WHERE rider_id IS NOT NULL;
CREATE INDEX orders_all ON orders (created_at DESC, id DESC);
CREATE INDEX orders_expiring ON orders (reserved_until) WHERE state = 'pending_payment';
CREATE INDEX orders_to_settle ON orders (delivered_at)
    WHERE state = 'delivered' AND settled_at IS NULL;

CREATE TABLE order_lines (
    order_id   uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    variant_id uuid NOT NULL REFERENCES variants (id),
    product_id uuid NOT NULL REFERENCES products (id),
    title      text NOT NULL,
    sku        text NOT NULL,
    unit_price bigint NOT NULL CHECK (unit_price > 0),
    quantity   integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, variant_id)
);
CREATE INDEX order_lines_variant ON order_lines (variant_id);

-- Append-only history: one row per state change (and per rider assignment / settlement).
CREATE TABLE order_events (
    id         bigserial PRIMARY KEY,
    order_id   uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('created', 'transition', 'admin', 'system',
                   'rider_assigned', 'settled')),
    from_state text,
    to_state   text NOT NULL,
    actor_id   uuid,
    actor_role text NOT NULL CHECK (actor_role IN ('buyer', 'seller', 'rider', 'admin',
                   'system')),
    reason     text CHECK (length(reason) <= 500),
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_events_order ON order_events (order_id, id);

CREATE FUNCTION order_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'order_events is append-only';
END $$;
CREATE TRIGGER order_events_no_update BEFORE UPDATE OR DELETE ON order_events
    FOR EACH ROW EXECUTE FUNCTION order_events_append_only();
