-- Partial refunds by admins (POST /v1/admin/orders/{id}/refunds): the order keeps its state and
-- its history gets a `refund` event carrying the amount given back (minor units, the order's
-- currency). `amount` is set on refund events only.
ALTER TABLE order_events DROP CONSTRAINT order_events_kind_check;
ALTER TABLE order_events ADD CONSTRAINT order_events_kind_check CHECK (kind IN (
    'created', 'transition', 'admin', 'system', 'rider_assigned', 'settled', 'refund'));
ALTER TABLE order_events ADD COLUMN amount bigint
    CHECK ((kind = 'refund') = (amount IS NOT NULL) AND (amount IS NULL OR amount > 0));
