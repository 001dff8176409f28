-- Catalog: products with variants; stock counters live on the variant row.
-- on_hand  = units the seller holds and has not yet sold (reserved ones included)
-- reserved = units held for unpaid orders (released on cancel/expiry, sold on payment)
-- sold     = units paid for
-- Available for sale = on_hand - reserved. CHECKs make overselling impossible at the database.
CREATE TABLE products (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seller_id   uuid NOT NULL REFERENCES users (id),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
    currency    text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status      text NOT NULL DEFAULT 'published' CHECK (status IN ('draft', 'published')),
    images      jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(images) = 'array'),
    min_price   bigint NOT NULL DEFAULT 0 CHECK (min_price >= 0),
    max_price   bigint NOT NULL DEFAULT 0 CHECK (max_price >= min_price),
    search      tsvector GENERATED ALWAYS AS (
                    to_tsvector('simple', title || ' ' || description)) STORED,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX products_published ON products (created_at DESC, id DESC) WHERE status = 'published';
CREATE INDEX products_seller ON products (seller_id, created_at DESC, id DESC);
CREATE INDEX products_search ON products USING gin (search);

CREATE TABLE variants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    product_id  uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    sku         text NOT NULL CHECK (length(sku) BETWEEN 1 AND 64),
    price       bigint NOT NULL CHECK (price > 0),
    on_hand     integer NOT NULL CHECK (on_hand >= 0),
    reserved    integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    sold        integer NOT NULL DEFAULT 0 CHECK (sold >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT variants_reserved_le_on_hand CHECK (reserved <= on_hand),
    UNIQUE (product_id, sku)
);
CREATE INDEX variants_product ON variants (product_id);
